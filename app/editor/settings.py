"""Preferences and the last parameters, persisted with `QSettings`.

One small typed wrapper, so keys and defaults live in one place and the widgets never spell a
settings key. Tests and benchmarks must never touch the user's real settings: pass an explicit
INI path (``Settings(path)``), or set ``INPAINT_STUDIO_SETTINGS`` to one — subprocess tests and
the screenshot script use the variable, since they cannot hand an object across.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from app.core.params import GenerationParams
from app.storage.paths import APP_NAME
from app.storage.shared_settings import SharedSettings

ORG_NAME = "InpaintStudio"
ENV_SETTINGS = "INPAINT_STUDIO_SETTINGS"
MAX_RECENT = 10
DEVICES = ("auto", "cuda", "mps", "cpu")


class Settings:
    """Typed access to the app's QSettings (INI file when a path is given or set in the env)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        path = path if path is not None else os.environ.get(ENV_SETTINGS)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)
            #: what the CLI shares (`app.storage.shared_settings`); beside an explicit INI file
            self.shared = SharedSettings(Path(path).parent / "settings.json")
        else:
            self.qsettings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG_NAME, APP_NAME)
            self.shared = SharedSettings()

    @property
    def path(self) -> str:
        return self.qsettings.fileName()

    def sync(self) -> None:
        self.qsettings.sync()

    # -- helpers ----------------------------------------------------------------------------
    def _get(self, key: str, default: Any) -> Any:
        value = self.qsettings.value(key, default)
        return default if value is None else value

    def _bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if isinstance(value, str):  # INI files give strings back
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)

    def _list(self, key: str) -> list[str]:
        raw = self._get(key, "[]")
        try:
            value = json.loads(raw) if isinstance(raw, str) else list(raw)
        except (ValueError, TypeError):
            return []
        return [str(v) for v in value if isinstance(v, str)]

    def _set_list(self, key: str, values: list[str]) -> None:
        # JSON text, because QSettings' INI list encoding turns a one-item list into a string.
        self.qsettings.setValue(key, json.dumps(list(values)))

    # -- recent files -----------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        return self._list("files/recent")

    def add_recent_file(self, path: str) -> list[str]:
        path = str(Path(path).resolve())
        files = [path] + [p for p in self.recent_files() if p != path]
        self._set_list("files/recent", files[:MAX_RECENT])
        return self.recent_files()

    def clear_recent_files(self) -> None:
        self._set_list("files/recent", [])

    def last_dir(self) -> str:
        return str(self._get("files/last_dir", ""))

    def set_last_dir(self, folder: str) -> None:
        self.qsettings.setValue("files/last_dir", str(folder))

    # -- parameters -------------------------------------------------------------------------
    def last_params(self) -> GenerationParams:
        """The parameters of the last session; defaults when missing or unreadable (a settings
        file edited by hand or written by another version must not stop the app starting)."""
        raw = self._get("generation/last_params", "")
        if not raw:
            return GenerationParams()
        try:
            data = json.loads(raw)
            data.pop("extra", None)
            return GenerationParams.from_dict(data)
        except (ValueError, TypeError):
            return GenerationParams()

    def set_last_params(self, params: GenerationParams) -> None:
        data = params.to_dict()
        data.pop("extra", None)
        self.qsettings.setValue("generation/last_params", json.dumps(data))

    # -- models and device ------------------------------------------------------------------
    def user_models(self) -> list[str]:
        """Model files/folders added by hand ("Add model…"): the list the CLI reads too."""
        return self.shared.user_models()

    def add_user_model(self, path: str) -> None:
        self.shared.add_user_model(path)

    def generation_server(self) -> tuple[str, str]:
        """(URL, token) of the ``inpaint-studio serve`` machine for remote models; ("", "") = none."""
        return str(self._get("server/url", "")), str(self._get("server/token", ""))

    def set_generation_server(self, url: str, token: str, model_refs: list[str]) -> None:
        """Remember the server and the ``remote:`` refs of its models (listed without asking it)."""
        self.qsettings.setValue("server/url", url)
        self.qsettings.setValue("server/token", token)
        self._set_list("server/models", model_refs)

    def remote_models(self) -> list[str]:
        return self._list("server/models")

    def device(self) -> str:
        value = str(self._get("models/device", "auto"))
        return value if value in DEVICES else "auto"

    def set_device(self, device: str) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")
        self.qsettings.setValue("models/device", device)

    def low_memory(self) -> bool:
        return self._bool("models/low_memory", False)

    def set_low_memory(self, on: bool) -> None:
        self.qsettings.setValue("models/low_memory", "true" if on else "false")

    def allow_pickle(self) -> bool:
        return self._bool("models/allow_pickle", False)

    def set_allow_pickle(self, on: bool) -> None:
        self.qsettings.setValue("models/allow_pickle", "true" if on else "false")

    def safety_checker(self) -> bool:
        return self._bool("models/safety_checker", False)

    def set_safety_checker(self, on: bool) -> None:
        self.qsettings.setValue("models/safety_checker", "true" if on else "false")

    def compile_unet(self) -> bool:
        return self._bool("models/compile_unet", False)

    def set_compile_unet(self, on: bool) -> None:
        self.qsettings.setValue("models/compile_unet", "true" if on else "false")

    # -- view -------------------------------------------------------------------------------
    def mask_color(self) -> str:
        return str(self._get("view/mask_color", "#ff2828"))

    def set_mask_color(self, color: str) -> None:
        self.qsettings.setValue("view/mask_color", color)

    def mask_opacity(self) -> float:
        try:
            return min(1.0, max(0.0, float(self._get("view/mask_opacity", 0.5))))
        except (TypeError, ValueError):
            return 0.5

    def set_mask_opacity(self, opacity: float) -> None:
        self.qsettings.setValue("view/mask_opacity", float(opacity))

    def brush_size(self, size_class: str) -> int | None:
        """The brush size the user last chose for images of ``size_class`` (None: never chose)."""
        try:
            value = int(self._get(f"brush/size_{size_class}", 0))
        except (TypeError, ValueError):
            return None
        return value if value > 0 else None

    def set_brush_size(self, size_class: str, size: int) -> None:
        self.qsettings.setValue(f"brush/size_{size_class}", int(size))

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        return (geometry if isinstance(geometry, QByteArray) else None, state if isinstance(state, QByteArray) else None)

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)
