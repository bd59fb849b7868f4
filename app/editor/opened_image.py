"""An image made ready to become the document, on whichever thread decoded it.

Installing a 24 MP photo costs work the GUI thread cannot afford inside one event (the issue's
budget is 50 ms): the editable copy beside the read-only original (~0.1 s for 144 MB), a 16-bit
image's 8-bit display copy (~0.2 s) and the empty mask. `prepare_image` does all of it where the
image was decoded (`app.editor.background_task` runs it on a pool thread), so
`Document.set_image` only swaps references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core import maskops
from app.editor.display_cache import DisplayCache


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """The arrays a `Document` adopts as they are, plus the decoded file's facts."""

    loaded: Any  # the `app.core.imageio.LoadedImage`, bare array or ``ProjectState`` it came from
    original: np.ndarray  # read-only: "as first opened"
    pixels: np.ndarray  # the editable copy
    mask: np.ndarray  # all zeros
    display: DisplayCache

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def icc_profile(self) -> bytes | None:
        return getattr(self.loaded, "icc_profile", None)

    @property
    def params(self) -> Any:
        return getattr(self.loaded, "params", None)

    @property
    def info(self) -> dict[str, Any]:
        info = getattr(self.loaded, "info", None)
        return info if isinstance(info, dict) else {}


def prepare_state(state: Any, *, owned: bool) -> PreparedImage:
    """A loaded ``ProjectState`` made ready the same way (``loaded`` is the state). ``owned``: its
    arrays are fresh from the file and nobody else holds them, so they are adopted without a copy;
    otherwise the pixels and mask are copied. Safe on any thread; raises `MaskError` (a
    ValueError) for a mask that does not fit the image."""
    current = np.ascontiguousarray(state.current)
    if current.ndim == 3 and current.shape[2] == 1:
        current = current[:, :, 0]
    original = np.ascontiguousarray(state.original).view()
    original.flags.writeable = False
    if not owned or np.shares_memory(current, original):
        current = current.copy()
    mask = np.ascontiguousarray(maskops.validate_mask(state.mask, current.shape[:2]))
    if not owned or mask is state.mask:
        mask = mask.copy()
    return PreparedImage(state, original, current, mask, DisplayCache(current))


def prepare_image(loaded: Any) -> PreparedImage:
    """Validate and copy ``loaded`` (a ``LoadedImage`` or an array) for a document; raises
    ValueError for an array no document can hold. Safe on any thread."""
    pixels = np.asarray(getattr(loaded, "pixels", loaded))
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim not in (2, 3) or (
        pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)
    ):
        raise ValueError(f"unsupported image array {pixels.shape} {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    original = np.ascontiguousarray(pixels)
    if original is pixels and pixels.flags.writeable:
        original = pixels.view()  # the caller's array stays writable; our view of it is not
    original.flags.writeable = False
    editable = original.copy()
    return PreparedImage(loaded, original, editable, np.zeros(editable.shape[:2], np.uint8), DisplayCache(editable))
