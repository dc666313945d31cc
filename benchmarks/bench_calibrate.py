"""Benchmark: light calibration throughput, 4096×3072 mono, one core, against Siril.

Eight 16-bit lights (sky × flat, dark current, ~1,300 hot pixels, Poisson-like noise) and float32
masters are written to a temporary folder. Timed on one core (NUMBA/OpenMP/BLAS threads = 1):

* ``calibrate_frame`` alone (arrays in memory), bias + dark + flat + cosmetic (dark defects and
  defects found in the frame) + automatic pedestal — the brief's configuration;
* ``calibrate_files`` file to file (read 16-bit FITS, calibrate, write float32 FITS), the same;
* ``calibrate_files`` with dark (bias included) + flat + cosmetic — the same work as the peer;
* Siril (``siril-cli``, ``setcpu 1``) ``preprocess -dark -flat -cc=dark`` on the same files, from
  its own "Execution time" log line (reading, calibrating, writing 32-bit FITS).

Frames per second are best of 2 runs (CPU time for skystack, Siril's reported time).

    .venv/bin/python benchmarks/bench_calibrate.py [--frames 8]
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

from skystack.calibrate import CalibrationConfig, calibrate_files, calibrate_frame  # noqa: E402

W, H = 4096, 3072
DN = 65535.0


def make_data(folder: Path, n: int) -> dict[str, Path | list[Path]]:
    """Lights (uint16, 60 s) and float32 masters: bias, dark (60 s, bias included), flat."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    bias = (500 + 2 * np.sin(xx / 9) + rng.normal(0, 1.5, (H, W))).astype(np.float32)
    hot = rng.random((H, W)) < 1e-4
    current = np.full((H, W), 0.02, np.float32)
    current[hot] = rng.uniform(5, 100, hot.sum())
    flat = (1 - 0.25 * ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (W / 2) ** 2).astype(np.float32)
    dark = bias + 60 * current + rng.normal(0, 0.5, (H, W)).astype(np.float32)
    out: dict[str, Path | list[Path]] = {}
    for name, data in (("bias", bias / DN), ("dark", dark / DN), ("flat", 0.5 * flat)):
        p = folder / f"master_{name}.fits"
        hdr = fits.Header()
        hdr["EXPTIME"] = 60.0 if name == "dark" else 0.0
        fits.PrimaryHDU(np.asarray(data, np.float32), header=hdr).writeto(p)
        out[name] = p
    lights = []
    (folder / "lights").mkdir()
    for i in range(n):
        e = 400 * flat + 60 * current + rng.normal(0, 20, (H, W)).astype(np.float32)
        adu = np.clip(np.rint(bias + e), 0, 65535).astype(np.uint16)
        p = folder / "lights" / f"light_{i + 1:05d}.fits"
        hdr = fits.Header()
        hdr["EXPTIME"] = 60.0
        fits.PrimaryHDU(adu, header=hdr, uint=True).writeto(p)
        lights.append(p)
    out["lights"] = lights
    return out


def cpu_best(fn, repeat: int = 2) -> float:  # noqa: ANN001
    best = np.inf
    for _ in range(repeat):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return best


def siril_seconds(data: dict, folder: Path) -> float | None:
    """Siril's own timing of ``preprocess`` (dark + flat + cosmetic from the dark), one CPU."""
    exe = shutil.which("siril-cli")
    if exe is None:
        return None
    work = folder / "siril"
    best = None
    for attempt in range(2):
        shutil.rmtree(work, ignore_errors=True)
        script = folder / "cal.ssf"
        script.write_text(
            "requires 1.0.0\nsetcpu 1\nset32bits\nsetext fits\n"
            f"cd {folder / 'lights'}\nlink light -out={work}\ncd {work}\n"
            f"preprocess light -dark={data['dark']} -flat={data['flat']} -cc=dark\n")
        proc = subprocess.run([exe, "-s", str(script)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"siril failed: {proc.stdout[-400:]}", file=sys.stderr)
            return None
        log = proc.stdout
        # the first "Execution time" after the preprocessing summary
        tail = log[log.rfind("Sequence processing succeeded"):]
        m = re.search(r"Execution time: ([\d.]+) (ms|s|min)", tail)
        if m is None:
            print(f"no Siril timing found (attempt {attempt})", file=sys.stderr)
            return None
        secs = float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "min": 60.0}[m.group(2)]
        best = secs if best is None else min(best, secs)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cal_") as tmp:
        folder = Path(tmp)
        print(f"writing {args.frames} lights of {W}×{H}…", file=sys.stderr)
        data = make_data(folder, args.frames)
        lights = data["lights"]
        from skystack.io import read_image

        light = read_image(lights[0]).data
        masters = {k: read_image(data[k]).data for k in ("bias", "dark", "flat")}
        cfg = CalibrationConfig()
        calibrate_frame(light[:256, :256], **{k: v[:256, :256] for k, v in masters.items()},
                        config=cfg)  # JIT warm-up
        t_frame = cpu_best(lambda: calibrate_frame(light, config=cfg, **masters))
        res = calibrate_frame(light, config=cfg, **masters)
        n = len(lights)

        def files(with_bias: bool) -> None:
            out = folder / ("out_bdf" if with_bias else "out_df")
            calibrate_files(lights, out, bias=data["bias"] if with_bias else None,
                            dark=data["dark"], flat=data["flat"], config=cfg)

        t_bdf = cpu_best(lambda: files(True)) / n
        t_df = cpu_best(lambda: files(False)) / n
        print("running Siril…", file=sys.stderr)
        t_siril = siril_seconds(data, folder)
        t_siril = t_siril / n if t_siril else None

    print(f"\n## Calibration throughput, {W}×{H} mono, one core\n")
    print("| run | s / frame | frames / s | speed vs Siril |")
    print("|---|---:|---:|---:|")
    rows = [("skystack calibrate_frame, B+D+F+cosmetic+pedestal (in memory)", t_frame),
            ("skystack calibrate_files, B+D+F+cosmetic+pedestal (file to file)", t_bdf),
            ("skystack calibrate_files, D+F+cosmetic (file to file)", t_df),
            ("Siril 1.0.6 preprocess -dark -flat -cc=dark (file to file)", t_siril)]
    for name, t in rows:
        if t is None:
            print(f"| {name} | - | - | - |")
            continue
        ratio = f"{t_siril / t:.2f}×" if t_siril and not name.startswith("Siril") else "-"
        print(f"| {name} | {t:.3f} | {1 / t:.2f} | {ratio} |")
    print(f"\nCosmetic correction in the first frame: {res.hot_pixels_from_dark} hot pixels from "
          f"the dark, {res.defects_in_frame} found in the frame; pedestal {res.pedestal_dn:g} DN.")


if __name__ == "__main__":
    main()
