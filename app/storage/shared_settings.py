"""The settings every front end shares, as a small JSON file readable without Qt.

The window's preferences live in QSettings, which the CLI must not import; what both must agree
on lives here: the models added with "Add model…" (so `inpaint-studio models` lists them) and
the A1111/Forge folder to borrow models from. ``data_dir()/settings.json`` by default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.core.atomic import atomic_write_bytes
from app.storage.paths import data_dir

USER_MODELS = "user_models"
A1111_FOLDER = "a1111_folder"


def default_path() -> Path:
    return data_dir() / "settings.json"


class SharedSettings:
    """Read on every access (another process may have written it); a damaged file reads as empty."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, key: str, value) -> None:
        data = self._read()
        data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(data, indent=2).encode("utf-8"))

    def user_models(self) -> list[str]:
        """Model files/folders added by hand, oldest first."""
        value = self._read().get(USER_MODELS, [])
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def add_user_model(self, path: str | os.PathLike[str]) -> None:
        path = str(path)
        self._write(USER_MODELS, [m for m in self.user_models() if m != path] + [path])

    def a1111_folder(self) -> str:
        value = self._read().get(A1111_FOLDER, "")
        return value if isinstance(value, str) else ""

    def set_a1111_folder(self, folder: str) -> None:
        self._write(A1111_FOLDER, folder.strip())
