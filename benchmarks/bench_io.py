"""Benchmark: read a 6248x4176 16-bit frame into float32 [0, 1].

Peers measured in the same run: astropy's own ``fits.getdata`` followed by the conversion a user
would write (``astype(float32) / 65535``). skystack reads the same pixels from FITS (BZERO 32768)
and, when ``skystack.io.xisf`` is importable, from an uncompressed XISF. Also timed: skystack's
header-only read. Best of 5 with a warm page cache (decoding and copying, not the disk).

    .venv/bin/python benchmarks/bench_io.py
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 6248, 4176


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls, in milliseconds (one untimed warm-up call first)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000.0


def main() -> None:
    from astropy.io import fits

    from skystack.io import Image, read_header, read_image, write_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, size=(HEIGHT, WIDTH), dtype=np.uint16)
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        fits_path = Path(tmp) / "frame.fits"
        fits.PrimaryHDU(pixels).writeto(fits_path)  # BITPIX 16 + BZERO 32768, as cameras write

        def astropy_read() -> np.ndarray:
            return fits.getdata(fits_path).astype(np.float32) / np.float32(65535)

        expected = astropy_read()
        assert np.array_equal(read_image(fits_path).data, expected), "FITS pixels differ"
        rows: list[tuple[str, float]] = [
            ("astropy `fits.getdata` + astype/65535", best_of(astropy_read)),
            ("skystack `read_image` FITS", best_of(lambda: read_image(fits_path))),
            ("skystack `read_header` FITS", best_of(lambda: read_header(fits_path))),
        ]
        if importlib.util.find_spec("skystack.io.xisf") is not None:
            xisf_path = Path(tmp) / "frame.xisf"
            image = Image.from_array(pixels.astype(np.float32) / np.float32(65535),
                                     sample_format="uint16")
            write_image(xisf_path, image, sample_format="uint16")
            assert np.array_equal(read_image(xisf_path).data, expected), "XISF pixels differ"
            rows.append(("skystack `read_image` XISF (uncompressed)",
                         best_of(lambda: read_image(xisf_path))))
        size_mb = fits_path.stat().st_size / 1e6

    peer = rows[0][1]
    print(f"### Reading a {WIDTH}x{HEIGHT} uint16 frame ({size_mb:.1f} MB) into float32 [0, 1]\n")
    print("| reader | best of 5, ms | ratio vs astropy |")
    print("|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {ms / peer:.2f} |")


if __name__ == "__main__":
    main()
