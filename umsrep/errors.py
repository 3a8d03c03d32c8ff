"""Errors that reach the user as one line and exit code 2 (see ``umsrep.cli``).

:func:`describe` turns the expected failures of the environment (file system, text encoding, damaged archives)
into such a line; ``umsrep.cli.main`` is the one place that calls it (the error boundary).
"""

from __future__ import annotations

import errno
import os
from typing import Optional


class UmsrepError(Exception):
    """Base class for expected, user-facing errors (bad recipe, bad data, bad run dir)."""

    exit_code = 2


class RecipeError(UmsrepError):
    """The recipe is invalid. The message names the recipe file and field path."""


class DataError(UmsrepError):
    """A data file or data set is unusable. The message names the file."""


class RunDirError(UmsrepError):
    """A run directory is missing something or does not match what was asked."""


# what an OSError means for the user, by errno (the strerror of the platform is the fallback)
_OS_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "not a folder (a file is in the way)",
    errno.EISDIR: "is a folder, not a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or the process's file-size limit",
    errno.ENAMETOOLONG: "file name too long",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "folder is not empty",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error (failing disk or network file system?)",
}


def _path_text(p) -> str:
    """A file name as text that always prints (undecodable bytes of a POSIX name shown as \\xNN)."""
    s = os.fsdecode(p) if isinstance(p, (bytes, os.PathLike)) else str(p)
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def os_reason(exc: OSError) -> str:
    """What an OSError means, in a few words (no file name)."""
    return _OS_REASONS.get(exc.errno) or (exc.strerror or type(exc).__name__).lower()


def one_line(text) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> Optional[str]:
    """One line for an expected environment failure, or None when ``exc`` is not one (a bug: let it raise)."""
    import zipfile
    import zlib

    if isinstance(exc, UmsrepError):
        return one_line(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        reason = os_reason(exc)
        names = [n for n in (exc.filename, exc.filename2) if n is not None]
        where = " -> ".join(_path_text(n) for n in names)
        return f"{where}: {reason}" if where else reason
    if isinstance(exc, UnicodeError):
        return f"text encoding: {one_line(exc)}"
    if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError)):
        return f"damaged or truncated archive ({type(exc).__name__}: {one_line(exc)})"
    if isinstance(exc, MemoryError):
        return "out of memory (use smaller images, a smaller --batch-size or image limit)"
    return None
