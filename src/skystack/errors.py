"""One error hierarchy for skystack.

Every error a user can cause with bad input is a :class:`SkystackError`. Subclasses also inherit
the builtin exception that means the same thing, so callers may catch either.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "SkystackError",
    "ImageReadError",
    "UnsupportedFormatError",
    "ChecksumError",
    "ImageWriteError",
    "ConfigError",
    "SkystackWarning",
]


class SkystackError(Exception):
    """Base class of every error skystack raises on purpose."""


class ImageReadError(SkystackError, ValueError):
    """A file could not be read as an image; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsupportedFormatError(ImageReadError):
    """The file is not in a format skystack reads (wrong magic bytes, unknown suffix)."""


class ChecksumError(ImageReadError):
    """A data block's stored checksum does not match its contents."""


class ImageWriteError(SkystackError, OSError):
    """An image could not be written."""


class ConfigError(SkystackError, ValueError):
    """A configuration value or command-line option is invalid."""


class SkystackWarning(UserWarning):
    """Base class of skystack's warnings (a file read with repairs, a questionable setting)."""
