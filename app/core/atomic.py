"""Atomic file writes: the destination holds either the old file or the complete new one.

A crash, a full disk or a killed process in the middle of a save must never leave half a project
where the user's work was. So we write a temp file in the *same* folder (a rename across file
systems is not atomic), flush and fsync it, ``os.replace`` it over the destination and fsync the
folder so the rename itself survives a power cut. On any failure the temp file is removed and the
old destination is untouched. Qt-free and torch-free.

Permissions: ``mkstemp`` creates 0600 files. A replaced file keeps its own mode; a new file gets
the mode other tools give it (0666 less the umask), except ``private=True`` files (recovery
files, which hold the user's unsaved work), which stay 0600.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temp_prefix(dest: Path) -> str:
    """Prefix of the temp files for ``dest`` (hidden, so folder listings stay clean)."""
    return f".{dest.name}."


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it, so briefly and under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def final_mode(dest: Path, private: bool) -> int:
    """The permission bits ``dest`` should have once written (see the module docstring)."""
    if private:
        return 0o600
    try:
        return stat.S_IMODE(os.stat(dest).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[BinaryIO]:
    """``with atomic_open(p) as fh: fh.write(...)`` — replaces ``p`` only if the block succeeds."""
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest), suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield fh
            fh.flush()
            if hasattr(os, "fchmod"):  # POSIX; Windows has no mode bits to keep
                os.fchmod(fh.fileno(), final_mode(dest, private))
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> None:
    with atomic_open(path, private=private) as fh:
        fh.write(data)


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[BinaryIO], None], *, private: bool = False) -> None:
    """Stream the content through ``writer(fh)`` (e.g. a zip writer) without holding it in memory."""
    with atomic_open(path, private=private) as fh:
        writer(fh)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def describe_write_error(exc: OSError, dest: str | os.PathLike[str]) -> str:
    """One line for the user: what went wrong writing ``dest`` and what to do about it."""
    name = Path(dest).name
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        why = "the disk is full; free some space or save to another drive"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied; choose a folder you can write to"
    elif code == errno.EROFS:
        why = "the disk is read-only; save to another drive"
    elif code == errno.ENOENT:
        why = "the folder does not exist; choose another folder"
    elif code == errno.ENAMETOOLONG:
        why = "the file name is too long; choose a shorter name"
    else:
        why = f"{exc.strerror or exc}; try another folder"
    return f"Could not save {name}: {why}. The previous file (if any) is unchanged."
