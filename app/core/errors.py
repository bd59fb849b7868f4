"""The errors a user sees. Every front end shows ``title`` and ``str(exc)`` as they are, so each
message says what went wrong and what to do; nothing matches class names or message texts.

``bad_input`` separates "fix your input" (CLI exit code 2) from "the run failed" (exit 1)."""

from __future__ import annotations


class UserError(Exception):
    """Base of every error meant for the user: ``title`` for a dialog, the message for its text."""

    title = "Generation failed"
    bad_input = True

    @property
    def message(self) -> str:
        return str(self) or type(self).__name__


class EmptyMaskError(UserError, ValueError):
    """Inpainting needs at least one masked pixel."""

    title = "Nothing to repaint"

    def __init__(self) -> None:
        super().__init__("The mask is empty: paint the area to repaint (white in a mask file) and try again.")


class NothingToInpaintFromError(UserError, ValueError):
    """A classical method fills the mask from the pixels around it; with none left unmasked it
    would return the input unchanged and call that a result."""

    title = "Nothing to inpaint from"

    def __init__(self) -> None:
        super().__init__(
            "Nothing left to inpaint from: the mask covers every pixel the classical method could copy from. "
            "Leave some of the image unmasked (or raise the padding), or use a diffusion model."
        )
