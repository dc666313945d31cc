"""``skystack integrate`` end to end on small FITS files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from skystack.cli import main


def test_cli_integrate_writes_master_and_maps(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    files = []
    for i in range(7):
        f = (0.2 + 0.01 * rng.standard_normal((32, 40))).astype(np.float32)
        if i == 3:
            f[10, 10] = 0.9
        p = tmp_path / f"l{i}.fits"
        fits.PrimaryHDU(f).writeto(p)
        files.append(str(p))
    bad = tmp_path / "empty.fits"
    bad.write_bytes(b"")
    out = tmp_path / "master.fits"
    rc = main(["integrate", *files, str(bad), "-o", str(out), "--rejection", "winsorized",
               "--maps", "--json", "--memory", "64M"])
    assert rc == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert len(report["frames"]) == 7 and report["rejection"] == "winsorized"
    assert "empty.fits" in captured.err and "skipping" in captured.err
    with fits.open(out) as hdul:
        assert hdul["REJ_HIGH"].data[10, 10] == 1
        assert hdul["COVERAGE"].data.min() == 7
        assert abs(float(hdul[0].data[10, 10]) - 0.2) < 0.02
