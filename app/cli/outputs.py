"""Output files the CLI must not destroy by accident.

Refused unless ``--force``: an output that is one of the inputs (``-o`` = ``-i``), a read-only
file, a symlink or a file with other hard links (an atomic write replaces the link with a new
file, so the other names would silently keep the old content). A second CLI writing the same
path while one runs is told so, through an advisory lock next to the output.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.core.atomic import LockFileRefused, open_lock_file, same_inode, sibling_name


class OutputRefused(Exception):
    """One line for the user: why this output is not written and how to insist."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], *, force: bool) -> None:
    """Raise `OutputRefused` for the first output that would destroy something."""
    if force:
        return
    for out in outputs:
        for src in inputs:
            if _same_file(out, src) or os.path.realpath(out) == os.path.realpath(src):  # no raise on a link loop
                raise OutputRefused(f"-o {out} is also an input ({src.name}); writing it would overwrite the original: "
                                    "choose another name, or add --force")
        try:
            st = out.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise OutputRefused(f"-o {out} is a symbolic link; it would be replaced by a new file: choose another name, or add --force")
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise OutputRefused(f"-o {out} has {st.st_nlink - 1} other hard link(s) that would keep the old image: "
                                "choose another name, or add --force")
        if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222:  # by its mode bits: root writes anything
            raise OutputRefused(f"-o {out} is read-only; choose another name, or add --force to replace it")


def _is_stale_pid_file(fd: int) -> bool:
    """An existing lock file holding only a process id: one a killed run of ours left."""
    content = os.pread(fd, 33, 0)
    return len(content) <= 32 and content.strip().isdigit()


def lock_path_of(output: Path) -> Path:
    """``.OUT.png.lock`` next to the output; shortened with a hash when that name would be too long."""
    return output.with_name(sibling_name(output, ".lock"))


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold an advisory lock on ``output`` for the run; `OutputRefused` if another process holds it
    or the lock path holds something we did not make (see `open_lock_file`: never followed, never
    truncated, never deleted)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic write still keeps files whole
        yield
        return
    lock_path = lock_path_of(output)
    while True:
        try:
            fd, created = open_lock_file(lock_path)
        except LockFileRefused as exc:
            raise OutputRefused(f"-o {output}: cannot lock it: {exc.strerror}") from None
        except OSError as exc:
            raise OutputRefused(f"-o {output}: cannot create the lock file {lock_path.name} "
                                f"({exc.strerror or exc}); check the folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputRefused(f"-o {output}: another inpaint-studio (pid {other if other.isdigit() else '?'}) "
                                "is writing this file now; wait for it or choose another name") from None
        if same_inode(fd, lock_path):
            break
        os.close(fd)  # its holder removed it between our open and our lock: take the new one
    try:
        if created or _is_stale_pid_file(fd):  # never rewrite a file that is not one of our locks
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            if same_inode(fd, lock_path):
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
    finally:
        os.close(fd)
