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
            if _same_file(out, src) or out.resolve() == src.resolve():
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


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold an advisory lock on ``output`` for the run; `OutputRefused` if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic write still keeps files whole
        yield
        return
    lock_path = output.with_name(f".{output.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise OutputRefused(f"-o {output}: another inpaint-studio (pid {other}) is writing this file now; "
                                "wait for it or choose another name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
    finally:
        os.close(fd)
