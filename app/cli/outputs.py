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

from app.core.atomic import LockBusy, LockFileRefused, held_lock, sibling_name


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


def lock_path_of(output: Path) -> Path:
    """``.OUT.png.lock`` next to the output; shortened with a hash when that name would be too long."""
    return output.with_name(sibling_name(output, ".lock"))


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold an advisory lock on ``output`` for the run (`app.core.atomic.held_lock`); `OutputRefused`
    if another process holds it or the lock path holds something we did not make."""
    lock_path = lock_path_of(output)
    held = contextlib.ExitStack()
    try:  # only taking the lock is translated here, never what the run raises inside it
        held.enter_context(held_lock(lock_path))
    except LockBusy as busy:
        raise OutputRefused(f"-o {output}: another inpaint-studio (pid {busy.holder}) is writing this file now; "
                            "wait for it or choose another name") from None
    except LockFileRefused as exc:
        raise OutputRefused(f"-o {output}: cannot lock it: {exc.strerror}") from None
    except OSError as exc:
        raise OutputRefused(f"-o {output}: cannot create the lock file {lock_path.name} "
                            f"({exc.strerror or exc}); check the folder") from None
    with held:
        yield
