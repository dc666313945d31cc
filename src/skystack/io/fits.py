"""FITS backend (astropy.io.fits). Minimal first version: plain images, uint16 via BZERO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skystack.errors import ImageReadError
from skystack.io.image import Header, Image, Keyword, from_unit_range, to_unit_range

_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO",
               "BSCALE", "PCOUNT", "GCOUNT", "XTENSION"}


def _open(path: Path) -> Any:
    from astropy.io import fits

    try:
        return fits.open(path, memmap=False, uint=True)
    except (OSError, ValueError) as err:
        raise ImageReadError(path, f"not a readable FITS file: {err}") from err


def _first_image_hdu(hdul: Any, path: Path) -> Any:
    for hdu in hdul:
        if hdu.header.get("NAXIS", 0) >= 2 and hdu.is_image:
            return hdu
    raise ImageReadError(path, "no image HDU in this FITS file")


def _keywords(header: Any) -> list[Keyword]:
    out = []
    for card in header.cards:
        if card.keyword in _STRUCTURAL or not card.keyword:
            continue
        value = card.value
        if not isinstance(value, str | int | float | bool) or value is None:
            value = None if value is None else str(value)
        out.append(Keyword(card.keyword, value, card.comment or ""))
    return out


def read_header(path: Path) -> Header:
    with _open(path) as hdul:
        hdu = _first_image_hdu(hdul, path)
        h = hdu.header
        naxis = h["NAXIS"]
        shape = tuple(int(h[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
        bitpix = h["BITPIX"]
        bzero = h.get("BZERO", 0)
        fmt = {8: "uint8", 16: "int16", 32: "int32", -32: "float32", -64: "float64"}[bitpix]
        if bitpix == 16 and bzero == 32768:
            fmt = "uint16"
        if bitpix == 32 and bzero == 2147483648:
            fmt = "uint32"
        return Header(path=str(path), format="fits", shape=shape, sample_format=fmt,
                      keywords=_keywords(h), bayer_pattern=h.get("BAYERPAT"),
                      row_order=h.get("ROWORDER"))


def read(path: Path) -> Image:
    with _open(path) as hdul:
        hdu = _first_image_hdu(hdul, path)
        raw = np.asarray(hdu.data)
        raw = raw.astype(raw.dtype.newbyteorder("="), copy=False)
        data, fmt, rng = to_unit_range(raw)
        h = hdu.header
        return Image(data=data, keywords=_keywords(h), sample_format=fmt, data_range=rng,
                     bayer_pattern=h.get("BAYERPAT"), row_order=h.get("ROWORDER"),
                     path=str(path), format="fits")


def write(path: Path, image: Image, *, sample_format: str = "float32", **_: Any) -> None:
    from astropy.io import fits

    data = from_unit_range(image.data, sample_format)
    hdu = fits.PrimaryHDU(data=data)
    for kw in image.keywords:
        if kw.name.upper() in _STRUCTURAL:
            continue
        hdu.header.append(fits.Card(kw.name, kw.value, kw.comment), end=True)
    hdu.writeto(path, overwrite=True)
