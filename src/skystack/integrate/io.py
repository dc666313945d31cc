"""Frame sources that deliver row bands, and writing results with their maps.

A source hands out rows ``[r0, r1)`` of one frame as float32 (C, rows, W) in [0, 1], the same
numbers :func:`skystack.io.read_image` returns. Uncompressed FITS is read band by band with
``os.preadv`` into a reusable buffer (no memory map, so file pages do not inflate RSS); every other
format is decoded once with ``read_image`` into a float32 ``.npy`` cache opened with
``mmap_mode="r"``; arrays are used in place.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from skystack.errors import ImageReadError

__all__ = ["FrameSource", "ArraySource", "FitsBandSource", "CachedSource", "open_sources",
           "BandNormalizer"]


@runtime_checkable
class BandNormalizer(Protocol):
    """Per-frame local normalization supplied by the normalization stage.

    ``apply(band, row0)`` maps rows ``[row0, row0 + band.shape[-2])`` of the frame (float32,
    (rows, W) or (C, rows, W), pedestal not removed) to the reference's scale and returns an array
    of the same shape (it may work in place).
    """

    def apply(self, band: NDArray[np.float32], row0: int) -> NDArray[np.float32]: ...


class FrameSource(Protocol):
    """Rows of one frame on demand."""

    name: str
    ndim: int                        # 2 for a mono (H, W) frame, 3 for (C, H, W)
    shape: tuple[int, int, int]      # (C, H, W)
    pedestal: float                  # in [0, 1] units

    def read_rows(self, r0: int, r1: int, out: NDArray[np.float32]) -> None:
        """Write rows [r0, r1) into ``out`` of shape (C, r1 - r0, W)."""
        ...

    def sample_rows(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        """Return the given rows (increasing) as (C, len(rows), W) float32.

        Called for different sources from several threads at once: it must not share state.
        """
        ...

    def close(self) -> None: ...


class ArraySource:
    """An in-memory frame (H, W) or (C, H, W)."""

    def __init__(self, data: NDArray[Any], name: str, pedestal: float = 0.0) -> None:
        arr = np.asarray(data)
        self.ndim = arr.ndim
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            msg = f"{name}: frame must be (H, W) or (C, H, W), got shape {np.shape(data)}"
            raise ValueError(msg)
        self.data = arr
        self.name = name
        self.shape = (int(arr.shape[0]), int(arr.shape[1]), int(arr.shape[2]))
        self.pedestal = pedestal

    def read_rows(self, r0: int, r1: int, out: NDArray[np.float32]) -> None:
        out[...] = self.data[:, r0:r1]

    def sample_rows(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        return np.asarray(self.data[:, rows], dtype=np.float32)

    def close(self) -> None:
        pass


def _pedestal_of(value: Any) -> float:
    try:
        return float(value) / 65535.0 if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


class FitsBandSource:
    """Row bands of an uncompressed FITS image read with ``os.preadv``.

    Handles the sample types whose decoding is a plain per-sample map identical to
    :func:`skystack.io.image.to_unit_range`: float32/float64 without scaling, uint8, and uint16
    stored as BITPIX 16 with BZERO 32768.
    """

    def __init__(self, path: Path, *, hdu_index: int, header: Any, data_offset: int,
                 subtract_pedestal: bool) -> None:
        naxis = int(header["NAXIS"])
        dims = [int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1)]
        c, h, w = (1, *dims) if naxis == 2 else dims
        self.name = str(path)
        self.ndim = naxis
        self.shape = (c, h, w)
        self.pedestal = _pedestal_of(header.get("PEDESTAL")) if subtract_pedestal else 0.0
        bitpix = int(header["BITPIX"])
        self._kind = {8: "u8", 16: "u16", -32: "f32", -64: "f64"}[bitpix]
        self._dtype = {"u8": np.dtype("u1"), "u16": np.dtype(">u2"), "f32": np.dtype(">f4"),
                       "f64": np.dtype(">f8")}[self._kind]
        self._offset = data_offset
        self._fd = os.open(path, os.O_RDONLY)
        self._map: mmap.mmap | None = None
        self._map_view: NDArray[np.uint8] | None = None

    #: One read buffer shared by every source: bands are gathered one frame at a time, and a
    #: buffer per frame would cost N × band bytes on top of the budget.
    _buf = bytearray(0)

    @staticmethod
    def supports(header: Any) -> bool:
        """True when the first image HDU can be decoded by this reader."""
        bitpix = int(header.get("BITPIX", 0))
        bzero = float(header.get("BZERO", 0.0))
        bscale = float(header.get("BSCALE", 1.0))
        naxis = int(header.get("NAXIS", 0))
        if naxis not in (2, 3) or bscale != 1.0 or "BLANK" in header:
            return False
        if bitpix in (-32, -64, 8):
            return bzero == 0.0
        return bitpix == 16 and bzero == 32768.0

    def _read(self, r0: int, r1: int, ch: int) -> NDArray[Any]:
        _, h, w = self.shape
        size = self._dtype.itemsize
        nbytes = (r1 - r0) * w * size
        if len(FitsBandSource._buf) < nbytes:
            FitsBandSource._buf = bytearray(nbytes)
        view = memoryview(FitsBandSource._buf)[:nbytes]
        start = self._offset + ((ch * h + r0) * w) * size
        got = os.preadv(self._fd, [view], start)
        if got != nbytes:
            raise ImageReadError(self.name, f"file is truncated (rows {r0}-{r1} missing)")
        return np.frombuffer(FitsBandSource._buf, dtype=self._dtype, count=(r1 - r0) * w).reshape(r1 - r0, w)

    def _decode(self, raw: NDArray[Any], out: NDArray[np.float32]) -> None:
        if self._kind == "u16":
            # BITPIX 16 + BZERO 32768: the stored big-endian int16 with its top bit flipped is the
            # unsigned value; the float32 division of to_unit_range (bit-identical values).
            u = raw.astype(np.uint16) ^ np.uint16(0x8000)
            np.divide(u, np.float32(65535.0), out=out, casting="unsafe")
        elif self._kind == "u8":
            np.divide(raw, np.float32(255.0), out=out, casting="unsafe")
        else:
            out[...] = raw

    def read_rows(self, r0: int, r1: int, out: NDArray[np.float32]) -> None:
        for ch in range(self.shape[0]):
            self._decode(self._read(r0, r1, ch), out[ch])

    @property
    def raw_u16(self) -> bool:
        """True when the samples are FITS unsigned 16-bit (BITPIX 16, BZERO 32768)."""
        return self._kind == "u16"

    def _raw_offset(self, r: int, ch: int) -> int:
        """File offset of row ``r`` of channel ``ch`` of 16-bit samples."""
        _, h, w = self.shape
        return self._offset + ((ch * h + r) * w) * 2

    def read_raw_rows(self, r0: int, r1: int, ch: int, out: NDArray[np.uint16]) -> None:
        """Rows [r0, r1) of channel ``ch`` as stored (big-endian, top bit flipped) into ``out``.

        ``out`` is a C-contiguous uint16 (r1 − r0, W) array; the stack kernel decodes the samples
        as it reads them, which saves a decoding pass over the band.
        """
        nbytes = (r1 - r0) * self.shape[2] * 2
        got = os.preadv(self._fd, [memoryview(out).cast("B")], self._raw_offset(r0, ch))
        if got != nbytes:
            raise ImageReadError(self.name, f"file is truncated (rows {r0}-{r1} missing)")

    def raw_rows_address(self, r0: int, ch: int) -> int:
        """Address of row ``r0`` of channel ``ch``, as stored, in a read-only map of the file.

        The stack kernel reads the samples there directly (no copy into a band buffer). The map
        is made on first use and lives until :meth:`close`; a file shorter than its header says
        is refused here, because reading past the end of a map is a crash, not an error.
        """
        if self._map is None:
            if os.fstat(self._fd).st_size < self._raw_offset(0, self.shape[0]):
                raise ImageReadError(self.name, "file is truncated (data shorter than NAXIS says)")
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
            self._map_view = np.frombuffer(self._map, np.uint8)
        assert self._map_view is not None
        return int(self._map_view.ctypes.data) + self._raw_offset(r0, ch)

    def release_rows(self, r0: int, r1: int, ch: int) -> None:
        """Drop rows [r0, r1) of channel ``ch`` from this process's resident memory.

        They stay in the page cache; without this, every mapped page the kernel touched would
        count towards the process's memory until the integration ends.
        """
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = self._raw_offset(r0, ch) // mmap.PAGESIZE * mmap.PAGESIZE   # page-aligned
        self._map.madvise(mmap.MADV_DONTNEED, start, self._raw_offset(r1, ch) - start)

    def sample_rows(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        c, h, w = self.shape
        size = self._dtype.itemsize
        rows = np.asarray(rows, np.intp)
        # a buffer of its own (not the shared band buffer): frames are sampled from several
        # threads at once; one read per run of consecutive rows, then one decoding pass
        raw = np.empty(c * len(rows) * w * size, np.uint8)
        view = memoryview(raw)
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)
        ends = np.append(starts[1:], len(rows))
        for ch in range(c):
            for j0, j1 in zip(starts.tolist(), ends.tolist(), strict=True):
                r0 = int(rows[j0])
                nbytes = (j1 - j0) * w * size
                at = (ch * len(rows) + j0) * w * size
                got = os.preadv(self._fd, [view[at:at + nbytes]],
                                self._offset + (ch * h + r0) * w * size)
                if got != nbytes:
                    raise ImageReadError(self.name, f"file is truncated (row {r0} missing)")
        out = np.empty((c, len(rows), w), np.float32)
        self._decode(raw.view(self._dtype).reshape(c, len(rows), w), out)
        return out

    def close(self) -> None:
        if self._map is not None:
            self._map_view = None           # the array holds a buffer export of the map
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class CachedSource(ArraySource):
    """A frame decoded once by ``read_image`` into a float32 ``.npy`` file, memory-mapped."""

    def __init__(self, path: Path, cache_dir: Path, index: int, *, subtract_pedestal: bool) -> None:
        from skystack.io import read_image

        img = read_image(path)
        ndim = img.data.ndim
        data = img.data if ndim == 3 else img.data[None]
        target = cache_dir / f"frame_{index:05d}.npy"
        np.save(target, np.ascontiguousarray(data, dtype=np.float32))
        del img, data
        pedestal = _pedestal_of(_keyword(path)) if subtract_pedestal else 0.0
        super().__init__(np.load(target, mmap_mode="r"), str(path), pedestal)
        self.ndim = ndim


def _keyword(path: Path) -> Any:
    from skystack.io import read_header

    try:
        return read_header(path).get("PEDESTAL")
    except ImageReadError:
        return None


def _open_fits(path: Path, subtract_pedestal: bool) -> FitsBandSource | None:
    """A band reader for a plain FITS file, or None when it needs the cache."""
    if path.suffix.lower() in (".fz", ".gz"):
        return None
    from skystack.io.fits import NotPlainFits, read_primary_header

    try:
        # the image in the primary HDU (what cameras and our own writers produce): no astropy
        primary = read_primary_header(path)
        if primary.cards.get("NAXIS") in (2, 3):
            if not FitsBandSource.supports(primary.cards):
                return None
            return FitsBandSource(path, hdu_index=0, header=primary.cards,
                                  data_offset=primary.data_offset,
                                  subtract_pedestal=subtract_pedestal)
    except NotPlainFits:
        pass
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True,
                       do_not_scale_image_data=True) as hdul:
            for k, hdu in enumerate(hdul):
                if hdu.header.get("NAXIS", 0) >= 2 and hdu.is_image:
                    if isinstance(hdu, fits.CompImageHDU) or not isinstance(
                            hdu, fits.PrimaryHDU | fits.ImageHDU):
                        return None
                    if not FitsBandSource.supports(hdu.header):
                        return None
                    offset = int(hdu.fileinfo()["datLoc"])
                    return FitsBandSource(path, hdu_index=k, header=hdu.header.copy(),
                                          data_offset=offset, subtract_pedestal=subtract_pedestal)
    except (OSError, ValueError) as err:
        raise ImageReadError(path, f"not a readable FITS file: {err}") from err
    return None


def open_sources(frames: Sequence[Any], *, cache_dir: Path | None,
                 subtract_pedestal: bool) -> list[FrameSource]:
    """One source per frame: arrays in place, plain FITS by bands, anything else via the cache."""
    from skystack.io import detect_format

    sources: list[FrameSource] = []
    try:
        for i, frame in enumerate(frames):
            if isinstance(frame, str | os.PathLike):
                path = Path(frame)
                src: FrameSource | None = None
                if detect_format(path) == "fits":
                    src = _open_fits(path, subtract_pedestal)
                if src is None:
                    if cache_dir is None:
                        msg = "a cache directory is needed for non-FITS frames"
                        raise ValueError(msg)
                    src = CachedSource(path, cache_dir, i, subtract_pedestal=subtract_pedestal)
                sources.append(src)
            else:
                sources.append(ArraySource(frame, f"frame {i}"))
    except BaseException:
        for s in sources:
            s.close()
        raise
    return sources


def _result_keywords(result: Any) -> list[Any]:
    from skystack.io import Keyword

    cfg = result.config
    cards = [Keyword("NCOMBINE", len(result.stats), "frames integrated"),
             Keyword("IMAGETYP", "master" + ("" if cfg.frame_type == "light" else f" {cfg.frame_type}"),
                     "skystack integrate"),
             Keyword("INTCOMB", cfg.combine, "pixel combination"),
             Keyword("INTREJ", cfg.rejection, "pixel rejection"),
             Keyword("INTRLOW", float(cfg.low or 0.0), "low rejection threshold"),
             Keyword("INTRHIGH", float(cfg.high or 0.0), "high rejection threshold"),
             Keyword("INTNORM", cfg.normalization, "output normalization"),
             Keyword("INTRNORM", cfg.rejection_normalization, "rejection normalization"),
             Keyword("INTWGHT", cfg.weights, "frame weights")]
    return cards


def write_result(result: Any, path: str | Path, *, keywords: Sequence[Any] = (),
                 maps: bool = True) -> Path:
    """Write an :class:`~skystack.integrate.IntegrationResult`.

    FITS: primary HDU = the image (float32), then ``REJ_LOW``, ``REJ_HIGH`` and ``COVERAGE``
    image extensions (uint16) when ``maps``. XISF (by suffix): the image through
    :func:`skystack.io.write_image`, the maps as sibling FITS files ``<stem>_rejlow.fits``,
    ``<stem>_rejhigh.fits`` and ``<stem>_coverage.fits``.
    """
    from skystack.io import Image, Keyword, write_image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cards = [*_result_keywords(result), *keywords]
    extra = [("REJ_LOW", result.low_rejected), ("REJ_HIGH", result.high_rejected),
             ("COVERAGE", result.coverage)]
    if p.suffix.lower() == ".xisf":
        write_image(p, Image(data=result.image, keywords=list(cards), sample_format="float32"))
        if maps:
            for name, arr in extra:
                suffix = {"REJ_LOW": "rejlow", "REJ_HIGH": "rejhigh", "COVERAGE": "coverage"}[name]
                _write_fits(p.with_name(f"{p.stem}_{suffix}.fits"), arr,
                            [Keyword("EXTNAME", name)], extra=())
        return p
    _write_fits(p, result.image, cards, extra=extra if maps else ())
    return p


def _write_fits(path: Path, data: NDArray[Any], cards: Sequence[Any],
                extra: Sequence[tuple[str, NDArray[Any]]]) -> None:
    from astropy.io import fits

    primary = fits.PrimaryHDU(data=np.asarray(data))
    for kw in cards:
        if kw.name.upper() in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3",
                               "EXTEND", "BZERO", "BSCALE"):
            continue
        primary.header.append(fits.Card(kw.name, kw.value, kw.comment), end=True)
    hdus = [primary]
    for name, arr in extra:
        # uint16 maps: astropy stores them as BITPIX 16 with BZERO 32768
        hdus.append(fits.ImageHDU(data=np.asarray(arr, np.uint16), name=name))
    fits.HDUList(hdus).writeto(path, overwrite=True)
