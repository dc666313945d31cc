"""TIFF backend (tifffile), for frames exported from other tools.

Reads the first image of the file: 8/16/32-bit integers and 32/64-bit floats, mono or RGB
(interleaved (H, W, 3) becomes (3, H, W); an alpha channel is dropped). Writes 8/16/32-bit
integers and float32/float64, mono or (C, H, W), optionally zlib-compressed. skystack's own
keywords, CFA pattern and row order travel in the ImageDescription tag as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from skystack.errors import ImageReadError, ImageWriteError
from skystack.io.image import Header, Image, Keyword, from_unit_range, to_unit_range

__all__ = ["read", "read_header", "write", "COMPRESSIONS"]

#: ``compression=`` names accepted by :func:`write` → tifffile codec.
COMPRESSIONS: dict[str, str | None] = {"none": None, "zlib": "zlib", "deflate": "zlib"}

_DESCRIPTION_KEY = "skystack"
_WITHOUT_ALPHA = {2: 1, 4: 3}  # gray+alpha → gray, RGBA → RGB
_ORIENTATION_ROWS = {1: "TOP-DOWN", 2: "TOP-DOWN", 3: "BOTTOM-UP", 4: "BOTTOM-UP"}


def _open(path: Path) -> Any:
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except Exception as err:  # noqa: BLE001 — tifffile raises many types on bad files
        raise ImageReadError(path, f"not a readable TIFF file ({_reason(err)})") from err


def _reason(err: BaseException) -> str:
    return (" ".join(str(err).split()) or type(err).__name__)[:200]


def _first_page(tif: Any, path: Path) -> Any:
    if len(tif.pages) == 0:
        raise ImageReadError(path, "TIFF holds no image (corrupt or truncated directory)")
    return tif.pages.first


def _layout(page: Any, path: Path) -> tuple[tuple[int, ...], str, bool]:
    """(C, H, W)/(H, W) output shape, stored sample format, and whether samples are last."""
    axes = str(page.axes)
    shape = tuple(int(s) for s in page.shape)
    dtype = np.dtype(page.dtype)
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise ImageReadError(path, f"unsupported TIFF sample type {dtype}")
    if axes == "YX":
        return shape, dtype.name, False
    if axes in ("YXS", "SYX"):
        samples_last = axes == "YXS"
        samples = shape[-1] if samples_last else shape[0]
        height, width = shape[:2] if samples_last else shape[1:]
        channels = _WITHOUT_ALPHA.get(samples, samples)
        out = (height, width) if channels == 1 else (channels, height, width)
        return out, dtype.name, samples_last
    raise ImageReadError(path, f"unsupported TIFF layout (axes {axes}, shape {shape})")


def _metadata(page: Any) -> tuple[list[Keyword], dict[str, Any], str | None, str | None]:
    keywords: list[Keyword] = []
    properties: dict[str, Any] = {}
    bayer: str | None = None
    tags = page.tags
    orientation = tags.get("Orientation")
    row_order = _ORIENTATION_ROWS.get(int(orientation.value)) if orientation else "TOP-DOWN"
    for name in ("Software", "Artist", "DateTime", "Make", "Model"):
        tag = tags.get(name)
        if tag is not None and str(tag.value).strip():
            properties[f"TIFF:{name}"] = str(tag.value).strip()
    desc = tags.get("ImageDescription")
    if desc is not None:
        try:
            meta = json.loads(str(desc.value))
        except (ValueError, TypeError):
            meta = None
        if isinstance(meta, dict) and _DESCRIPTION_KEY in meta:
            for item in meta.get("keywords", []):
                if isinstance(item, list) and len(item) == 3:
                    keywords.append(Keyword(str(item[0]), item[1], str(item[2])))
            bayer = meta.get("bayer_pattern") or None
            row_order = meta.get("row_order") or row_order
        elif str(desc.value).strip():
            properties["TIFF:ImageDescription"] = str(desc.value).strip()
    return keywords, properties, bayer, row_order


def read_header(path: Path) -> Header:
    """Shape, sample format and metadata of the first image, without decoding pixels."""
    path = Path(path)
    with _open(path) as tif:
        try:
            page = _first_page(tif, path)
            shape, fmt, _ = _layout(page, path)
            keywords, properties, bayer, row_order = _metadata(page)
        except ImageReadError:
            raise
        except Exception as err:  # noqa: BLE001
            raise ImageReadError(path, f"corrupt TIFF structure ({_reason(err)})") from err
    _, _, data_range = to_unit_range(np.zeros(1, dtype=fmt))
    return Header(path=str(path), format="tiff", shape=shape, sample_format=fmt,
                  keywords=keywords, properties=properties, bayer_pattern=bayer,
                  row_order=row_order, data_range=data_range)


def read(path: Path) -> Image:
    """Read the first image of a TIFF file as float32 (integers mapped onto [0, 1])."""
    path = Path(path)
    with _open(path) as tif:
        try:
            page = _first_page(tif, path)
            shape, _, samples_last = _layout(page, path)
            raw = page.asarray()
            keywords, properties, bayer, row_order = _metadata(page)
        except ImageReadError:
            raise
        except Exception as err:  # noqa: BLE001 — truncated strips, bad codecs...
            raise ImageReadError(path, f"cannot decode the TIFF pixels ({_reason(err)})") from err
    if samples_last:
        raw = np.moveaxis(raw, -1, 0)
    if raw.ndim == 3:
        keep = shape[0] if len(shape) == 3 else 1
        raw = raw[:keep] if keep > 1 else raw[0]
    data, fmt, data_range = to_unit_range(np.ascontiguousarray(raw))
    return Image(data=np.ascontiguousarray(data), keywords=keywords, properties=properties,
                 sample_format=fmt, data_range=data_range, bayer_pattern=bayer,
                 row_order=row_order, path=str(path), format="tiff")


def write(
    path: Path,
    image: Image,
    *,
    sample_format: str = "float32",
    compression: str | None = None,
) -> None:
    """Write ``image`` as a TIFF file.

    Parameters
    ----------
    path : Path
        Destination (replaced when it exists).
    image : Image
        Mono (H, W) or (C, H, W); three channels are written as interleaved RGB.
    sample_format : {"uint8", "uint16", "uint32", "float32", "float64"}
        Stored sample type.
    compression : {None, "zlib"}
        Lossless zlib (Adobe deflate) compression.
    """
    import tifffile

    path = Path(path)
    key = (compression or "none").lower()
    if key not in COMPRESSIONS:
        msg = f"{path}: unknown TIFF compression {compression!r}; use None or 'zlib'"
        raise ImageWriteError(msg)
    try:
        data = from_unit_range(image.data, sample_format)
    except ValueError as err:
        raise ImageWriteError(f"{path}: {err}") from err
    if data.dtype.kind == "i":
        raise ImageWriteError(f"{path}: TIFF output supports unsigned or float samples, "
                              f"not {sample_format}")
    meta = {
        _DESCRIPTION_KEY: 1,
        "keywords": [[k.name, k.value, k.comment] for k in image.keywords],
        "bayer_pattern": image.bayer_pattern,
        "row_order": image.row_order,
    }
    kwargs: dict[str, Any] = {
        "description": json.dumps(meta, default=str),
        "metadata": None,
        "compression": COMPRESSIONS[key],
        "software": "skystack",
    }
    if data.ndim == 3 and data.shape[0] == 3:
        data = np.ascontiguousarray(np.moveaxis(data, 0, -1))
        kwargs.update(photometric="rgb", planarconfig="contig")
    elif data.ndim == 3:
        kwargs.update(photometric="minisblack", planarconfig="separate")
    else:
        kwargs.update(photometric="minisblack")
    try:
        tifffile.imwrite(path, data, **kwargs)
    except OSError as err:
        raise ImageWriteError(f"{path}: cannot write ({err})") from err
