"""Benchmark: ``skystack.library.scan`` over 5,000 small FITS frames, cold and cached.

Writes 5,000 64×48 uint16 frames with N.I.N.A.-like headers (~45 cards, in a
``NIGHT/TYPE/`` folder tree) into a temporary folder, then times

- a cold scan (empty header cache: every header is parsed),
- a warm scan (same files: every header comes from the cache),
- the peer: a plain ``astropy.io.fits.getheader`` loop, on a 500-file sample, scaled to 5,000.

"Cold" means a cold skystack cache; the files themselves sit in the OS page cache after being
written. Targets (issue 4): cold < 10 s, cached < 1 s.

Run: ``.venv/bin/python benchmarks/bench_scan.py [N]``
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cards(i: int, kind: str, night: str) -> list[tuple[str, object, str]]:
    exp = {"LIGHT": 300.0, "FLAT": 2.0, "DARK": 300.0, "BIAS": 0.0}[kind]
    filt = ("L", "R", "G", "B", "Ha", "OIII", "SII")[i % 7]
    minute = i % 60
    return [
        ("IMAGETYP", kind, "Type of exposure"),
        ("EXPOSURE", exp, "[s] Exposure duration"),
        ("EXPTIME", exp, "[s] Exposure duration"),
        ("DATE-LOC", f"{night}T22:{minute:02d}:00.000", "Time of observation (local)"),
        ("DATE-OBS", f"{night}T20:{minute:02d}:00.000", "Time of observation (UTC)"),
        ("XBINNING", 1, "X axis binning factor"),
        ("YBINNING", 1, "Y axis binning factor"),
        ("GAIN", 100, "Sensor gain"),
        ("OFFSET", 50, "Sensor gain offset"),
        ("EGAIN", 0.25, "[e-/ADU] Electrons per A/D unit"),
        ("XPIXSZ", 3.76, "[um] Pixel X axis size"),
        ("YPIXSZ", 3.76, "[um] Pixel Y axis size"),
        ("INSTRUME", "ZWO ASI2600MM Pro", "Imaging instrument name"),
        ("SET-TEMP", -10.0, "[degC] CCD temperature setpoint"),
        ("CCD-TEMP", -10.0 + (i % 3) * 0.1, "[degC] CCD temperature"),
        ("BAYERPAT", "RGGB", "Sensor Bayer pattern"),
        ("XBAYROFF", 0, "Bayer pattern X axis offset"),
        ("YBAYROFF", 0, "Bayer pattern Y axis offset"),
        ("USBLIMIT", 40, "Camera-specific USB setting"),
        ("TELESCOP", "Esprit 100ED", "Name of telescope"),
        ("FOCALLEN", 550.0, "[mm] Focal length"),
        ("FOCRATIO", 5.5, "Focal ratio"),
        ("RA", 10.684708, "[deg] RA of telescope"),
        ("DEC", 41.26875, "[deg] Declination of telescope"),
        ("CENTALT", 63.2, "[deg] Altitude of telescope"),
        ("CENTAZ", 101.4, "[deg] Azimuth of telescope"),
        ("AIRMASS", 1.12, "Airmass at frame center (Gueymard 1993)"),
        ("PIERSIDE", "WEST", "Telescope pointing state"),
        ("SITEELEV", 520.0, "[m] Observation site elevation"),
        ("SITELAT", 46.5, "[deg] Observation site latitude"),
        ("SITELONG", 7.25, "[deg] Observation site longitude"),
        ("FWHEEL", "ZWO EFW", "Filter Wheel name"),
        ("FILTER", filt, "Active filter name"),
        ("FOCNAME", "ZWO EAF", "Focusing equipment name"),
        ("FOCPOS", 12345, "[step] Focuser position"),
        ("FOCUSPOS", 12345, "[step] Focuser position"),
        ("FOCUSSZ", 1.0, "[um] Focuser step size"),
        ("FOCTEMP", 8.5, "[degC] Focuser temperature readout"),
        ("ROTNAME", "None", "Rotator equipment name"),
        ("OBJECT", "M 31", "Name of the object of interest"),
        ("OBJCTRA", "00 42 44", "[H M S] RA of imaged object"),
        ("OBJCTDEC", "+41 16 07", "[D M S] Declination of imaged object"),
        ("OBJCTROT", 12.3, "[deg] planned rotation of imaged object"),
        ("ROWORDER", "TOP-DOWN", "FITS Image Orientation"),
        ("EQUINOX", 2000.0, "Equinox of celestial coordinate system"),
        ("SWCREATE", "N.I.N.A. 3.1.2.9001", "Software that created this file"),
    ]


def write_frames(root: Path, n: int) -> None:
    """``n`` frames split over 4 nights × 4 types, written as fast as astropy allows."""
    from astropy.io import fits

    data = np.full((48, 64), 1000, dtype=np.uint16)
    kinds = ("LIGHT", "LIGHT", "LIGHT", "FLAT", "DARK", "BIAS")
    for i in range(n):
        kind = kinds[i % len(kinds)]
        night = f"2026-10-{12 + (i // 1250) % 4:02d}"
        folder = root / night / kind
        folder.mkdir(parents=True, exist_ok=True)
        hdu = fits.PrimaryHDU(data=data)
        for name, value, comment in _cards(i, kind, night):
            hdu.header[name] = (value, comment)
        hdu.writeto(folder / f"{night}_{kind}_{i:05d}.fits")


def main(argv: list[str] | None = None) -> int:
    """Write the frames, time the scans, print a markdown table."""
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 5000
    from astropy.io import fits

    from skystack.library import scan

    with tempfile.TemporaryDirectory(prefix="bench_scan_") as tmp:
        root = Path(tmp) / "frames"
        os.environ["SKYSTACK_CACHE_DIR"] = str(Path(tmp) / "cache")
        t = time.perf_counter()
        write_frames(root, n)
        t_write = time.perf_counter() - t

        t = time.perf_counter()
        cold = scan([root])
        t_cold = time.perf_counter() - t
        t = time.perf_counter()
        warm = scan([root])
        t_warm = time.perf_counter() - t
        assert len(cold.frames) == len(warm.frames) == n, (len(cold.frames), len(warm.frames))
        assert warm.stats.headers_read == 0 and warm.stats.cache_hits == n

        sample = [f.path for f in cold.frames[:: max(1, n // 500)]][:500]
        t = time.perf_counter()
        for p in sample:
            fits.getheader(p)
        t_astropy = (time.perf_counter() - t) / len(sample) * n

    print(f"scan of {n} FITS frames (64x48 uint16, 46 header cards); files written in "
          f"{t_write:.1f} s\n")
    print("| run | seconds | ms/frame | speed vs astropy getheader loop |")
    print("|---|---:|---:|---:|")
    print("| astropy.io.fits.getheader loop, headers only, no metadata (500-file sample, "
          f"scaled) | {t_astropy:.2f} | "
          f"{t_astropy / n * 1e3:.3f} | 1.0x |")
    print(f"| skystack scan, cold cache ({cold.stats.fast_path} fast-path headers) | "
          f"{t_cold:.2f} | {t_cold / n * 1e3:.3f} | {t_astropy / t_cold:.1f}x |")
    print(f"| skystack scan, cached | {t_warm:.2f} | {t_warm / n * 1e3:.3f} | "
          f"{t_astropy / t_warm:.1f}x |")
    ok = t_cold < 10 and t_warm < 1
    print(f"\ntargets (cold < 10 s, cached < 1 s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
