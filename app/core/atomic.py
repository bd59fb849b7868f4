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
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


#: What `mkstemp` adds after the prefix: 8 random characters and the suffix.
_TEMP_TAIL = 8 + len(TEMP_SUFFIX)


def name_max(folder: str | os.PathLike[str]) -> int:
    """Longest file name (in bytes) ``folder``'s file system accepts; 255 where it cannot say."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def sibling_name(dest: Path, suffix: str, *, tail: int = 0) -> str:
    """``.{dest.name}{suffix}``, a hidden helper name next to ``dest`` (lock, temp file) that
    always fits the file system, so every name it accepts as an output works: a name too long
    keeps its first bytes plus a hash of the whole name (still unique per destination).
    ``tail`` reserves bytes the caller appends after this name (`mkstemp`'s random part)."""
    folder = dest.parent if str(dest.parent) else Path(".")
    limit = name_max(folder) - tail
    raw = os.fsencode(dest.name)
    if len(raw) + 1 + len(os.fsencode(suffix)) <= limit:
        return f".{dest.name}{suffix}"
    digest = "~" + hashlib.sha256(raw).hexdigest()[:16]
    keep = max(0, limit - 1 - len(digest) - len(os.fsencode(suffix)))
    return "." + os.fsdecode(raw[:keep]) + digest + suffix


def temp_prefix(dest: Path) -> str:
    """Prefix of the temp files for ``dest`` (hidden, so folder listings stay clean)."""
    return sibling_name(dest, ".", tail=_TEMP_TAIL)


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


def atomic_write_all(files: Sequence[tuple[str | os.PathLike[str], Callable[[BinaryIO], None]]], *,
                     private: bool = False) -> None:
    """Write every file or none: each goes to its own temp file first, and only when all are
    complete are they renamed into place (a batch of outputs is never left half written). A
    failure before the renames leaves every destination untouched; one during them (rare: the
    temp files are already complete) removes the files this call had put in place. An `OSError`
    names the destination it failed on (``filename``)."""
    staged: list[tuple[str, Path]] = []
    placed: list[Path] = []
    dest = Path()
    try:
        for path, writer in files:
            dest = Path(path)
            folder = dest.parent if str(dest.parent) else Path(".")
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest), suffix=TEMP_SUFFIX, dir=folder)
            staged.append((tmp, dest))
            with os.fdopen(fd, "w+b") as fh:
                writer(fh)
                fh.flush()
                if hasattr(os, "fchmod"):
                    os.fchmod(fh.fileno(), final_mode(dest, private))
                os.fsync(fh.fileno())
        for tmp, dest in staged:
            os.replace(tmp, dest)
            placed.append(dest)
    except BaseException as exc:
        if isinstance(exc, OSError):
            exc.filename = str(dest)
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for dest in placed:
            with contextlib.suppress(OSError):
                os.unlink(dest)
        raise
    for folder in {dest.parent if str(dest.parent) else Path(".") for _, dest in staged}:
        fsync_dir(folder)


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
    return f"Could not save {Path(dest).name}: {write_error_reason(exc)}. The previous file (if any) is unchanged."


def write_error_reason(exc: OSError) -> str:
    """Why a write failed and what to do, in words (never a raw "[Errno 28]")."""
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
    return why


class LockFileRefused(OSError):
    """The lock path holds something we did not create (a link, a folder, another user's file);
    ``str(error)`` is one line naming it. We neither follow, truncate nor delete it."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_LOCK_OPEN = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW


def open_lock_file(lock_path: Path) -> tuple[int, bool]:
    """Open ``lock_path`` for an advisory lock without ever following a link: ``(fd, created)``.

    A new file is made with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (0600). An existing one is reused
    only if it is a plain file of ours with a single name (a stale lock a killed run left); a
    planted symbolic link, hard link, folder or FIFO raises `LockFileRefused` — opening with
    ``O_CREAT`` and truncating used to destroy whatever such a link pointed at.
    """
    for _ in range(8):  # a lock removed or made between our two opens: try again
        try:
            return os.open(lock_path, _LOCK_OPEN | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            pass
        except IsADirectoryError:
            raise LockFileRefused(errno.EISDIR, f"{lock_path} is a folder where the lock file goes; remove it") from None
        try:
            fd = os.open(lock_path, _LOCK_OPEN)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK) or _is_link(lock_path):
                raise LockFileRefused(exc.errno, f"{lock_path} is a symbolic link where the lock file goes "
                                                 "(not made by Inpaint Studio); remove it") from None
            if exc.errno == errno.EISDIR:
                raise LockFileRefused(exc.errno, f"{lock_path} is a folder where the lock file goes; remove it") from None
            raise
        st = os.fstat(fd)
        problem = ("is not a plain file" if not stat.S_ISREG(st.st_mode)
                   else "has other hard links" if st.st_nlink != 1
                   else "belongs to another user" if hasattr(os, "geteuid") and st.st_uid != os.geteuid()
                   else "")
        if problem:
            os.close(fd)
            raise LockFileRefused(errno.EEXIST, f"{lock_path} {problem} (not a lock Inpaint Studio made); remove it")
        return fd, False
    raise LockFileRefused(errno.EAGAIN, f"{lock_path} keeps appearing and disappearing; try again")


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def same_inode(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a lock whose file another process
    removed meanwhile protects nothing)."""
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class LockBusy(Exception):
    """Another process holds the lock; ``holder`` is the pid it wrote ("?" when unknown)."""

    def __init__(self, holder: str):
        super().__init__(f"held by process {holder}")
        self.holder = holder


@contextlib.contextmanager
def held_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``lock_path`` for the block: `LockBusy` if
    another process holds it, `LockFileRefused` if the path holds something we did not make.
    The file is opened by `open_lock_file` (never followed, never truncated unless ours), holds
    our pid, and is removed on exit if it is still the file we locked. The OS drops the lock when
    the process dies, so a killed run never leaves it held. A no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the atomic writes still keep files whole
        yield
        return
    while True:
        fd, created = open_lock_file(lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise LockBusy(holder if holder.isdigit() else "?") from None
        if same_inode(fd, lock_path):
            break
        os.close(fd)  # its holder removed it between our open and our lock: take the new one
    try:
        ours = created or _is_stale_pid_file(fd)  # never rewrite or remove a file that is not one of our locks
        if ours:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            if ours and same_inode(fd, lock_path):
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
    finally:
        os.close(fd)


def _is_stale_pid_file(fd: int) -> bool:
    """An existing lock file holding only a process id: one a killed run of ours left."""
    content = os.pread(fd, 33, 0)
    return len(content) <= 32 and content.strip().isdigit()
