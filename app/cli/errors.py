"""Exit codes and the one-line error of the command line, shared by its commands."""

from __future__ import annotations

PROG = "inpaint-studio"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


class CliError(Exception):
    """A failure to report as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def one_line(text: object) -> str:
    """An error or message as one line (a traceback-free stderr is part of the CLI's contract)."""
    if isinstance(text, BaseException):
        text = str(text) or type(text).__name__
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())
