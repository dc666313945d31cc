"""Scan folders of frames into an :class:`Inventory`: normalized metadata plus rejected files.

Only headers are read. Plain FITS files go through a small card parser of our own (astropy
spends ~3 ms per header; this takes ~0.1 ms); anything else goes through
:func:`skystack.io.read_header`. Headers are cached in one SQLite file keyed by (absolute path,
size, mtime_ns), so a second scan of thousands of frames reads no file at all. Inputs are never
modified.

Examples
--------
>>> from skystack.library import scan                     # doctest: +SKIP
>>> inv = scan(["~/astro/M31"])                            # doctest: +SKIP
>>> [f.type for f in inv.frames][:3], inv.rejected[0].reason   # doctest: +SKIP
(['light', 'light', 'light'], 'not an image (suffix .txt)')
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import time
import tomllib
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from skystack.errors import ConfigError, ImageReadError
from skystack.io import IMAGE_SUFFIXES, Header, Keyword, read_header
from skystack.io.fits import NotPlainFits as _NotSimple
from skystack.io.fits import _image_shape, _layout, read_primary_header
from skystack.io.fits import _text as _fits_text
from skystack.metadata import OVERRIDE_FIELDS, FrameInfo, _coerce_override, frame_info

__all__ = [
    "Inventory",
    "RejectedFile",
    "ScanStats",
    "Overrides",
    "OVERRIDES_NAME",
    "load_overrides",
    "cache_dir",
    "read_header_fast",
    "scan",
]

#: An overrides file with this name at the top of a scanned folder is used automatically.
OVERRIDES_NAME = "skystack-overrides.toml"
_CACHE_VERSION = 2


@dataclass(frozen=True)
class RejectedFile:
    """A file the scan could not use, and why (one human sentence)."""

    path: str
    reason: str


@dataclass
class ScanStats:
    """What a scan did: for benchmarks and cache tests."""

    files: int = 0
    headers_read: int = 0
    cache_hits: int = 0
    fast_path: int = 0
    seconds: float = 0.0
    cache_error: str | None = None


@dataclass
class Inventory:
    """Frames found by :func:`scan` (in walk order) and the files rejected on the way.

    ``root`` is the folder given when exactly one folder was scanned; JSON paths are relative
    to it.
    """

    frames: list[FrameInfo] = field(default_factory=list)
    rejected: list[RejectedFile] = field(default_factory=list)
    root: Path | None = None
    stats: ScanStats = field(default_factory=ScanStats)

    def relpath(self, path: str) -> str:
        """``path`` relative to :attr:`root` with forward slashes (unchanged without a root)."""
        if self.root is None:
            return path
        rel = os.path.relpath(path, self.root)
        return rel.replace(os.sep, "/")

    def to_json(self) -> dict[str, Any]:
        """``{"version": 1, "root", "frames", "rejected"}`` as in the ``link --json`` schema."""
        return {
            "version": 1,
            "root": str(self.root) if self.root is not None else None,
            "frames": [f.to_json(self.relpath(f.path)) for f in self.frames],
            "rejected": [{"path": self.relpath(r.path), "reason": r.reason}
                         for r in self.rejected],
        }


# --------------------------------------------------------------------------------------------
# Fast FITS header parsing
# --------------------------------------------------------------------------------------------

# The card reader is the FITS backend's read_primary_header (shared with the stack engine's
# band reader), so both give identical headers; what it declines (compressed, extensions, odd
# cards) astropy reads.

def read_header_fast(path: str | os.PathLike[str]) -> Header:
    """Read a FITS header without astropy when the image is in the primary HDU.

    Gives the same :class:`~skystack.io.Header` as :func:`skystack.io.read_header`, and also
    checks that the file holds as many pixel bytes as the header promises (a truncated copy is
    rejected here, where astropy would only notice when reading pixels). Falls back to
    :func:`skystack.io.read_header` for XISF, TIFF, raw, compressed or multi-extension FITS.

    Raises
    ------
    ImageReadError
        The file is empty, truncated or unreadable.
    """
    p = os.fspath(path)
    try:
        return _parse_fits(p)
    except _NotSimple:
        return read_header(p)


def _parse_fits(path: str) -> Header:
    primary = read_primary_header(path)
    cards, keywords = primary.cards, primary.keywords
    naxis = cards.get("NAXIS")
    bitpix = cards.get("BITPIX")
    if not isinstance(naxis, int) or naxis < 2 or not isinstance(bitpix, int):
        raise _NotSimple  # the image is in an extension (e.g. tile-compressed), or odd
    dims = [cards.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise _NotSimple
    layout = _layout(cards, Path(path))
    shape = _image_shape(cards, Path(path))
    need = primary.data_offset + abs(bitpix) // 8 * math.prod(dims)
    size = os.path.getsize(path)
    if size < need:
        raise ImageReadError(path, f"truncated: the header promises {need} bytes but the file "
                                   f"has {size} — re-copy the file")
    return Header(path=path, format="fits", shape=shape, sample_format=layout.sample_format,
                  keywords=keywords, bayer_pattern=_fits_text(cards, "BAYERPAT"),
                  row_order=_fits_text(cards, "ROWORDER"), data_range=layout.data_range)


# --------------------------------------------------------------------------------------------
# Header cache
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where skystack caches: ``$SKYSTACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/skystack``, else
    ``~/.cache/skystack``."""
    env = os.environ.get("SKYSTACK_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "skystack"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _encode(header: Header) -> list[Any]:
    return [header.format, list(header.shape), header.sample_format,
            [[k.name, k.value, k.comment] for k in header.keywords],
            header.properties, header.bayer_pattern, header.row_order, list(header.data_range)]


def _decode(path: str, packed: list[Any]) -> Header:
    fmt, shape, sf, kws, props, bayer, row, rng = packed
    return Header(path=path, format=fmt, shape=tuple(shape), sample_format=sf,
                  keywords=[Keyword(n, v, c) for n, v, c in kws], properties=props,
                  bayer_pattern=bayer, row_order=row, data_range=(rng[0], rng[1]))


@dataclass(frozen=True)
class _Row:
    ok: bool
    data: str           # header JSON ({"h", "w"}) or the rejection reason
    ctx: str | None     # context the cached FrameInfo was computed in
    info: str | None    # FrameInfo JSON


_DT_FIELDS = ("date_obs", "date_loc")
_TUPLE_FIELDS = ("binning", "bayer_offset")


def _info_record(info: FrameInfo) -> str:
    d = dict(info.__dict__)
    for k in _DT_FIELDS:
        d[k] = d[k].isoformat() if d[k] is not None else None
    return json.dumps(d, default=_jsonable, separators=(",", ":"))


def _info_from_record(text: str) -> FrameInfo:
    d = json.loads(text)
    for k in _DT_FIELDS:
        if d.get(k) is not None:
            d[k] = datetime.fromisoformat(d[k])
    for k in _TUPLE_FIELDS:
        if d.get(k) is not None:
            d[k] = tuple(d[k])
    return FrameInfo(**d)


@lru_cache(maxsize=1)
def _code_key() -> str:
    """Changes whenever the metadata rules change, so cached FrameInfo never goes stale."""
    from skystack import metadata

    h = hashlib.sha1(usedforsecurity=False)
    for mod_file in (metadata.__file__, __file__):
        h.update(Path(mod_file).read_bytes())
    return h.hexdigest()[:16]


class _Cache:
    """(absolute path, size, mtime_ns) → header JSON or the reason the file was rejected."""

    def __init__(self, enabled: bool, stats: ScanStats) -> None:
        self.db: sqlite3.Connection | None = None
        self.stats = stats
        if not enabled:
            return
        try:
            folder = cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(folder / f"headers-v{_CACHE_VERSION}.sqlite", timeout=10)
            self.db.execute("CREATE TABLE IF NOT EXISTS headers (path TEXT PRIMARY KEY, "
                            "size INTEGER, mtime_ns INTEGER, ok INTEGER, data TEXT, "
                            "ctx TEXT, info TEXT)")
        except (OSError, sqlite3.Error) as err:
            self._fail(err)

    def _fail(self, err: Exception) -> None:
        # A cache that cannot be used only makes the scan slower; never fail because of it.
        self.stats.cache_error = f"header cache disabled: {err}"
        if self.db is not None:
            self.db.close()
        self.db = None

    def get_many(self, keys: Sequence[tuple[str, int, int]]) -> dict[str, _Row]:
        """Rows whose size and mtime still match the file."""
        if self.db is None or not keys:
            return {}
        want = {k[0]: k for k in keys}
        found: dict[str, _Row] = {}
        paths = list(want)
        try:
            for i in range(0, len(paths), 500):
                chunk = paths[i:i + 500]
                q = ("SELECT path, size, mtime_ns, ok, data, ctx, info FROM headers "
                     "WHERE path IN (" + ",".join("?" * len(chunk)) + ")")
                for path, size, mtime_ns, ok, data, ctx, info in self.db.execute(q, chunk):
                    k = want[path]
                    if size == k[1] and mtime_ns == k[2]:
                        found[path] = _Row(bool(ok), data, ctx, info)
        except sqlite3.Error as err:
            self._fail(err)
            return {}
        return found

    def put_many(self, rows: list[tuple[str, int, int, int, str, str | None, str | None]]) -> None:
        if self.db is None or not rows:
            return
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO headers VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    rows)
        except sqlite3.Error as err:
            self._fail(err)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------

def _glob_regex(glob: str) -> re.Pattern[str]:
    """``Flats/**/*.fits`` → regex: ``**`` spans folders, ``*``/``?`` stay inside one name."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 1:]:
            j = glob.index("]", i + 1)
            body = glob[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


@dataclass(frozen=True)
class _Rule:
    glob: str
    pattern: re.Pattern[str]
    values: dict[str, Any]
    prefer_path: bool


@dataclass
class Overrides:
    """Rules from an overrides file: ``[[override]]`` tables with a ``glob`` and field values.

    Globs match the path relative to the overrides file's folder or to the scanned folder
    (case-insensitive, ``/`` separators); a glob without ``/`` matches file names anywhere.
    Later rules win over earlier ones.
    """

    path: Path
    rules: list[_Rule]
    prefer_path: bool = False

    @property
    def source(self) -> str:
        """How :attr:`FrameInfo.sources` names these overrides."""
        return f"override {self.path.name}"

    def match(self, candidates: Sequence[str]) -> tuple[dict[str, Any], bool]:
        """Merged values of every rule matching one of ``candidates``, and the path preference."""
        values: dict[str, Any] = {}
        prefer = self.prefer_path
        for rule in self.rules:
            for c in candidates:
                target = c.rsplit("/", 1)[-1] if "/" not in rule.glob else c
                if rule.pattern.match(target):
                    values.update(rule.values)
                    prefer = prefer or rule.prefer_path
                    break
        return values, prefer


def _prefer(value: Any, where: str) -> bool:
    if value is None:
        return False
    if value not in ("header", "path"):
        raise ConfigError(f"{where}: prefer = {value!r} must be \"header\" or \"path\"")
    return value == "path"


def load_overrides(path: str | os.PathLike[str]) -> Overrides:
    """Read an overrides TOML file.

    ``prefer = "path"`` (top level or per rule) lets path values win over header values.

    Examples
    --------
    ::

        prefer = "header"

        [[override]]
        glob = "Flats/**/*.fits"
        type = "flat"
        filter = "Ha"

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, or a rule has an unknown field or a bad value.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the overrides file: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: not valid TOML: {err}") from err
    top_prefer = _prefer(data.get("prefer"), str(p))
    extra = set(data) - {"prefer", "override"}
    if extra:
        raise ConfigError(f"{p}: unknown top-level key(s) {sorted(extra)}; "
                          "expected [[override]] tables and an optional prefer")
    rules = []
    for n, table in enumerate(data.get("override", []), 1):
        where = f"{p} [[override]] #{n}"
        if not isinstance(table, dict) or not isinstance(table.get("glob"), str):
            raise ConfigError(f"{where}: needs glob = \"Folder/**/*.fits\"")
        values = {k: v for k, v in table.items() if k not in ("glob", "prefer")}
        unknown = set(values) - OVERRIDE_FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; "
                              f"known: {sorted(OVERRIDE_FIELDS)}")
        for k, v in values.items():
            _coerce_override(k, v, where)  # fail now, naming the rule, not mid-scan
        glob = table["glob"].replace("\\", "/").lstrip("./") if table["glob"] != "." else "**"
        rules.append(_Rule(glob, _glob_regex(glob), values, _prefer(table.get("prefer"), where)))
    return Overrides(path=p, rules=rules, prefer_path=top_prefer)


# --------------------------------------------------------------------------------------------
# Scan
# --------------------------------------------------------------------------------------------

@dataclass
class _Candidate:
    path: str       # absolute
    top: str        # the folder argument it was found under (absolute), or its parent
    size: int
    mtime_ns: int
    overrides: Overrides | None


def _skip(name: str) -> bool:
    return name.startswith(".") or name == OVERRIDES_NAME


#: A folder holding a file of this name is not scanned (e.g. the simulator's ``truth/``, or any
#: folder of notes and exports a user wants skystack to leave alone).
IGNORE_MARKER = ".skystackignore"


def _walk(folder: str) -> Iterator[os.DirEntry[str]]:
    """Files under ``folder``, depth first, names sorted; hidden entries and folders holding a
    ``.skystackignore`` file skipped."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    if any(e.name == IGNORE_MARKER for e in entries):
        return
    dirs = []
    for e in entries:
        if _skip(e.name):
            continue
        try:
            is_dir = e.is_dir()
        except OSError:
            continue
        if is_dir:
            dirs.append(e)
        else:
            yield e
    for d in dirs:
        yield from _walk(d.path)


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _not_image_reason(name: str) -> str:
    suffix = os.path.splitext(name)[1]
    return f"not an image (suffix {suffix})" if suffix else "not an image (no file suffix)"


_FALLBACK = "fallback"


def _read_fast(path: str) -> tuple[bool, str | Header]:
    """(ok, header or reason); reason ``_FALLBACK`` asks for astropy. Never raises."""
    try:
        return True, _parse_fits(path)
    except _NotSimple:
        return False, _FALLBACK
    except ImageReadError as err:
        return False, err.problem
    except Exception as err:  # noqa: BLE001 — a scan never stops on a bad file
        return False, f"unreadable: {type(err).__name__}: {err}"


def _read_slow(path: str) -> tuple[bool, str | Header, list[str]]:
    """:func:`skystack.io.read_header` with its warnings captured (main thread only:
    ``warnings.catch_warnings`` is not thread-safe)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            header: str | Header = read_header(path)
            ok = True
        except ImageReadError as err:
            header, ok = err.problem, False
        except Exception as err:  # noqa: BLE001 — a scan never stops on a bad file
            header, ok = f"unreadable: {type(err).__name__}: {err}", False
    notes = []
    for w in caught:
        if issubclass(w.category, DeprecationWarning | ResourceWarning):
            continue
        text = str(w.message)
        text = text[len(path) + 2:] if text.startswith(path + ": ") else text
        notes.append(f"file: {text}")
    return ok, header, notes


def scan(
    paths: Sequence[str | os.PathLike[str]],
    *,
    use_cache: bool = True,
    overrides: str | os.PathLike[str] | None = None,
    longitude: float | None = None,
    workers: int | None = None,
) -> Inventory:
    """Walk folders and files, read every frame's header and normalize its metadata.

    Parameters
    ----------
    paths : sequence of str or Path
        Folders (walked recursively, sorted, hidden entries skipped) and files.
    use_cache : bool
        Use and update the header cache (see :func:`cache_dir`).
    overrides : str or Path, optional
        An overrides TOML file (:func:`load_overrides`). Without it, a
        ``skystack-overrides.toml`` at the top of a scanned folder is used for that folder.
    longitude : float, optional
        Site longitude (degrees east) for the observing night of frames without SITELONG.
    workers : int, optional
        Threads reading uncached headers (default: 4 for more than 64 files, else 1).

    Returns
    -------
    Inventory
        Frames in walk order; every other file found, each with a reason, in ``rejected``.

    Raises
    ------
    ConfigError
        The overrides file is unreadable or invalid (bad frames never raise).
    """
    t0 = time.perf_counter()
    inv = Inventory()
    explicit = load_overrides(overrides) if overrides is not None else None
    folders = [p for p in paths if os.path.isdir(p)]
    if len(paths) == 1 and len(folders) == 1:
        inv.root = Path(os.path.abspath(folders[0]))

    seen: set[str] = set()
    cands: list[_Candidate] = []
    for arg in paths:
        a = os.path.abspath(arg)
        if os.path.isdir(a):
            ov = explicit
            auto = os.path.join(a, OVERRIDES_NAME)
            if ov is None and os.path.isfile(auto):
                ov = load_overrides(auto)
            entries: list[tuple[str, str]] = [(e.path, e.name) for e in _walk(a)]
            top = a
        elif os.path.isfile(a):
            entries, top, ov = [(a, os.path.basename(a))], os.path.dirname(a), explicit
        else:
            inv.rejected.append(RejectedFile(a, "no such file or folder"))
            continue
        for path, name in entries:
            if path in seen:
                continue
            seen.add(path)
            if not _is_image_name(name):
                inv.rejected.append(RejectedFile(path, _not_image_reason(name)))
                continue
            try:
                st = os.stat(path)
            except OSError as err:
                inv.rejected.append(RejectedFile(path, f"cannot stat: {err.strerror or err}"))
                continue
            cands.append(_Candidate(path, top, st.st_size, st.st_mtime_ns, ov))
    inv.stats.files = len(cands) + len(inv.rejected)

    cache = _Cache(use_cache, inv.stats)
    fresh: dict[str, tuple[bool, str | Header, list[str]]] = {}
    try:
        hits = cache.get_many([(c.path, c.size, c.mtime_ns) for c in cands])
        inv.stats.cache_hits = len(hits)
        misses = [c for c in cands if c.path not in hits]
        n_workers = workers if workers is not None else (4 if len(misses) > 64 else 1)
        if n_workers > 1:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                results = list(pool.map(_read_fast, [c.path for c in misses], chunksize=32))
        else:
            results = [_read_fast(c.path) for c in misses]
        inv.stats.headers_read = len(misses)
        rejected_rows = []
        for c, (ok, got) in zip(misses, results, strict=True):
            notes: list[str] = []
            if not ok and got == _FALLBACK:
                ok, got, notes = _read_slow(c.path)
            else:
                inv.stats.fast_path += 1
            fresh[c.path] = (ok, got, notes)
            if not ok:
                rejected_rows.append((c.path, c.size, c.mtime_ns, 0, str(got), None, None))
        cache.put_many(rejected_rows)
    except BaseException:
        cache.close()
        raise

    updates = []
    try:
        for c in cands:
            values: dict[str, Any] = {}
            prefer = False
            source = "override"
            if c.overrides is not None:
                rel_top = os.path.relpath(c.path, c.top).replace(os.sep, "/")
                rel_ov = os.path.relpath(c.path, c.overrides.path.parent.absolute())
                values, prefer = c.overrides.match([rel_ov.replace(os.sep, "/"), rel_top])
                source = c.overrides.source
            # Everything frame_info depends on besides the header itself.
            ctx = json.dumps([_code_key(), c.top, longitude, values, prefer, source],
                             default=_jsonable, sort_keys=True)
            row = hits.get(c.path)
            if row is not None and row.ok and row.ctx == ctx and row.info:
                inv.frames.append(_info_from_record(row.info))
                continue
            if c.path in fresh:
                ok, got, notes = fresh[c.path]
            else:
                assert row is not None
                ok, got, notes = row.ok, row.data, []
                if ok:
                    packed = json.loads(row.data)
                    got, notes = _decode(c.path, packed["h"]), packed["w"]
            if not ok:
                inv.rejected.append(RejectedFile(c.path, str(got)))
                continue
            assert isinstance(got, Header)
            info = frame_info(got, root=c.top, longitude=longitude, overrides=values,
                              prefer_path=prefer, override_source=source)
            info.size_bytes, info.mtime = c.size, c.mtime_ns / 1e9
            info.warnings[:0] = notes
            inv.frames.append(info)
            if c.path in fresh:
                data = json.dumps({"h": _encode(got), "w": notes}, default=_jsonable,
                                  separators=(",", ":"))
            else:
                data = row.data  # type: ignore[union-attr]
            updates.append((c.path, c.size, c.mtime_ns, 1, data, ctx, _info_record(info)))
        cache.put_many(updates)
    finally:
        cache.close()
    inv.rejected.sort(key=lambda r: r.path)
    inv.stats.seconds = time.perf_counter() - t0
    return inv
