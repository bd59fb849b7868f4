"""Text for a terminal from names and prompts we did not write.

A model folder called ``\\x1b[2J…`` or a prompt holding an OSC title sequence must not clear the
user's screen or retitle the window: every control character (C0, DEL, C1) is shown as a
``\\xNN`` escape, and a file name that is not UTF-8 (its bytes kept by Python as lone surrogates)
shows its raw bytes the same way instead of failing the print. ``--json`` output needs none of
this: JSON escapes control characters itself.
"""

from __future__ import annotations

import re
import sys

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``text`` with every control character and undecodable byte escaped (linear time)."""
    return _UNSAFE.sub(_escape, str(text))


def tolerant_streams() -> None:
    """Let stdout/stderr print any character even on an ASCII or strict terminal (escaped
    rather than raising after the work is done: "wrote …" must never turn success into exit 1)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
