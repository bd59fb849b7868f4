"""Files a save must not replace by accident, said once for every front end.

An atomic save writes a new file and renames it over the old one, so it "succeeds" on a file the
user protected (read-only), replaces a symbolic link by a plain file, and leaves other hard links
with the old content. Saving a result over the image it was made from destroys the original.
The window asks for another name in these cases (the CLI refuses them unless ``--force``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def overwrite_refusal(target: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str] | None] = ()) -> str | None:
    """Why replacing ``target`` would lose something (one phrase: "is read-only", …), or None.
    ``sources``: files the work was opened from, which must not be overwritten."""
    path = Path(target)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be checked ({exc.strerror or exc})"
    for src in sources:
        if src and _same_file(path, Path(src)):
            return "is the image you opened; saving over it would lose the original"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link; saving would replace the link by a new file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_nlink > 1:
        return f"has {st.st_nlink - 1} other hard link(s) that would keep the old content"
    if not st.st_mode & 0o222:  # by its mode bits: root may write anything, the user protected it
        return "is read-only"
    return None
