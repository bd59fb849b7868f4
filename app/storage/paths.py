"""Where things live: bundled resources, the user's data folder (models, recovery files), and the
model hub downloads come from.

One rule for every part of the app: ``$INPAINT_STUDIO_DATA`` when set (tests, portable installs),
else the platform's user data folder for "Inpaint Studio"; the hub is ``$HF_ENDPOINT`` when set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "Inpaint Studio"
ENV_DATA = "INPAINT_STUDIO_DATA"


def resources_dir() -> Path:
    """``resources/``: in a PyInstaller bundle, in an installed wheel (as ``app/resources``, see
    pyproject.toml), or at the top of a checkout."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    package = Path(__file__).resolve().parent.parent  # app/
    installed = package / "resources"
    return installed if installed.is_dir() else package.parent / "resources"


def data_dir() -> Path:
    override = os.environ.get(ENV_DATA)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """The user models folder that discovery scans first and "Add model…" suggests."""
    return data_dir() / "models"


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` read now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
