"""What each front end answers for each kind of failure: the one table.

Every error a run raises has a kind (`app.core.errors.KINDS`: a `UserError`'s ``kind``, the
engine's `Cancelled`, Python's `MemoryError`); `kind_of` reads it and `OUTCOMES` turns it into the
CLI's exit code and each HTTP API's status. Nothing compares class names or message texts.
"""

from __future__ import annotations

from app.core.errors import BAD_INPUT, CANCELLED, FAILED, MODEL_MISSING, OUT_OF_MEMORY, UNAVAILABLE, UserError

#: The front ends of the table: the command line, the HTTP APIs (A1111, OpenAI, Segmind, Appypie,
#: Replicate-style predictions) and the remote editor's backend route.
CLI, HTTP, BACKEND = "cli", "http", "backend"

#: kind → answer per front end: the CLI's exit code, an HTTP status (``backend``: the remote
#: editor's route, which answers a refused region with 422 as FastAPI does).
OUTCOMES: dict[str, dict[str, int]] = {
    BAD_INPUT: {CLI: 2, HTTP: 400, BACKEND: 422},
    MODEL_MISSING: {CLI: 2, HTTP: 400, BACKEND: 422},
    OUT_OF_MEMORY: {CLI: 1, HTTP: 503, BACKEND: 503},
    CANCELLED: {CLI: 130, HTTP: 409, BACKEND: 409},
    UNAVAILABLE: {CLI: 1, HTTP: 503, BACKEND: 503},
    FAILED: {CLI: 1, HTTP: 500, BACKEND: 500},
}


def kind_of(exc: BaseException) -> str:
    """The kind of ``exc``: its own ``kind`` (`UserError`, `Cancelled`), out of memory for a
    `MemoryError`, else failed."""
    if isinstance(exc, MemoryError):
        return OUT_OF_MEMORY
    from app.inference.engine import Cancelled

    kind = getattr(exc, "kind", None) if isinstance(exc, (UserError, Cancelled)) else None
    return kind if isinstance(kind, str) and kind in OUTCOMES else FAILED


def outcome(exc: BaseException, front: str) -> int:
    """The exit code (``front`` = `CLI`) or HTTP status (`HTTP`, `BACKEND`) for ``exc``."""
    return OUTCOMES[kind_of(exc)][front]
