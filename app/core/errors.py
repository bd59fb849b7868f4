"""The errors a user sees. Every front end shows ``title`` and ``str(exc)`` as they are, so each
message says what went wrong and what to do; nothing matches class names or message texts.

``kind`` says what sort of failure it is (`KINDS`); each front end turns a kind into its own
exit code or HTTP status through one table (`app.service.errors.OUTCOMES`). ``bad_input``
separates "fix your input" (CLI exit code 2) from "the run failed" (exit 1)."""

from __future__ import annotations


#: The kinds of failure a front end tells apart.
BAD_INPUT = "bad_input"  # a parameter, an image or a mask to fix
MODEL_MISSING = "model_missing"  # the model cannot be found, is refused or needs what is not installed
OUT_OF_MEMORY = "out_of_memory"  # the device ran out of memory; a retry with less may work
CANCELLED = "cancelled"  # the user (or the client) stopped the run
UNAVAILABLE = "unavailable"  # a server or device this run needs cannot be reached or used
FAILED = "failed"  # anything else that stopped the run
KINDS = (BAD_INPUT, MODEL_MISSING, OUT_OF_MEMORY, CANCELLED, UNAVAILABLE, FAILED)


class UserError(Exception):
    """Base of every error meant for the user: ``title`` for a dialog, the message for its text."""

    title = "Generation failed"
    kind = BAD_INPUT
    #: The request field to fix, for a front end to name (`app.service.fields.FrontEnd.of`); None = the image.
    field: str | None = None

    @property
    def bad_input(self) -> bool:
        """Fix the input (CLI exit 2), rather than the run failed (exit 1)."""
        return self.kind in (BAD_INPUT, MODEL_MISSING)

    @property
    def message(self) -> str:
        return str(self) or type(self).__name__


class EmptyMaskError(UserError, ValueError):
    """Inpainting needs at least one masked pixel."""

    title = "Nothing to repaint"
    field = "mask"

    def __init__(self) -> None:
        super().__init__("The mask is empty: paint the area to repaint (white in a mask file) and try again.")


class NothingToInpaintFromError(UserError, ValueError):
    """A classical method fills the mask from the pixels around it; with none left unmasked it
    would return the input unchanged and call that a result."""

    title = "Nothing to inpaint from"
    field = "mask"

    def __init__(self) -> None:
        super().__init__(
            "Nothing left to inpaint from: the mask covers every pixel the classical method could copy from. "
            "Leave some of the image unmasked (or raise the padding), or use a diffusion model."
        )
