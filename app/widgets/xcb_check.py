"""Before Qt starts on X11: are the system libraries its xcb plugin needs installed?

A fresh Debian/Ubuntu desktop lacks e.g. ``libxcb-cursor0``; Qt then aborts with a long message
about "could not load the Qt platform plugin" that does not say what to install. This asks ``ldd``
which libraries of the plugin are missing and turns them into one ``apt-get install`` line.
Plain-Python (no Qt import), so it can run before the QApplication exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

#: What README's "Linux" section lists: what Qt's xcb plugin needs beyond a basic X11 desktop.
XCB_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
                "libxcb-shape0", "libxcb-xkb1", "libxkbcommon-x11-0")
_NOT_FOUND = re.compile(r"^\s*(\S+\.so\.\S+)\s*=>\s*not found", re.MULTILINE)


def debian_package(soname: str) -> str:
    """Debian's package name for a shared library: libxcb-cursor.so.0 → libxcb-cursor0,
    libxkbcommon-x11.so.0 → libxkbcommon-x11-0 (a dash when the name ends in a digit)."""
    base, _, version = soname.partition(".so.")
    base = base.lower()
    version = version.split(".")[0]
    return f"{base}-{version}" if base[-1:].isdigit() else f"{base}{version}"


def missing_libraries(ldd_output: str) -> list[str]:
    """Sonames ``ldd`` reported as not found, once each, in its order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def _plugin() -> Path:
    import PySide6  # the package only: Qt itself is not loaded by this

    return Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"


def _ldd(path: Path) -> str:
    ldd = shutil.which("ldd")
    if ldd is None or not path.is_file():
        return ""
    try:
        return subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def xcb_problem(environ: dict[str, str] | None = None) -> str | None:
    """The message to print instead of Qt's abort, or None when xcb is not used or loads."""
    env = os.environ if environ is None else environ
    if not env.get("DISPLAY") or env.get("QT_QPA_PLATFORM", "xcb") not in ("", "xcb"):
        return None
    missing = missing_libraries(_ldd(_plugin()))
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
    return (f"Qt's X11 plugin cannot load: missing {', '.join(missing)}.\n"
            f"On Debian/Ubuntu install them with:\n  sudo apt-get install -y {packages}\n"
            "(or run on Wayland with QT_QPA_PLATFORM=wayland).")
