"""The project format's identity and history: its tag and version, the one error type of project
files, and the step-by-step migrations that bring an older manifest up to the current version."""

from __future__ import annotations

from typing import Any

FORMAT_TAG = "inpaint-studio-project"
FORMAT_VERSION = 3
PROJECT_SUFFIX = ".inpaint"


class ProjectError(ValueError):
    """The project cannot be read or written; ``str(error)`` is one line for the user.

    ``unexpected`` is True when the loader's last-resort net caught an error it has no specific
    check for: the user still gets a message instead of a crash, and the fuzzer counts it as a bug.
    """

    unexpected = False


def _version_of(manifest: dict[str, Any], name: str) -> int:
    version = manifest.get("format_version", manifest.get("version"))
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProjectError(f"{name}: the project format version is missing or not a number; the file is damaged.")
    if version > FORMAT_VERSION:
        raise ProjectError(
            f"{name} was saved by a newer Inpaint Studio (project format {version}, this version reads up to "
            f"{FORMAT_VERSION}); update Inpaint Studio to open it."
        )
    if version < 1 or version not in _MIGRATIONS and version != FORMAT_VERSION:
        raise ProjectError(f"{name}: unknown project format version {version}.")
    if version >= 2 and manifest.get("format") != FORMAT_TAG:
        raise ProjectError(f"{name} is not an Inpaint Studio project (wrong format tag).")
    return version


def _migrate_v1(m: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (the pre-release draft): flat width/height, ``parameters``, ``history``,
    ``image.png`` for the current pixels, ``original.png`` only if ``has_original`` (else = current),
    no layout (read from the PNG), no regions/backend/elapsed in the history."""
    files = {"current": "image.png", "mask": "mask.png", "original": "original.png" if m.get("has_original") is True else None}
    gens = []
    history = m.get("history", [])
    if not isinstance(history, list):
        raise ProjectError("the project history is not a list; the file is damaged.")
    for entry in history:
        if not isinstance(entry, dict):
            raise ProjectError("a history entry is not an object; the file is damaged.")
        gens.append(
            {
                "params": entry.get("params", {}),
                "seeds": entry.get("seeds", []),
                "regions": [],
                "backend": entry.get("backend", ""),
                "elapsed_s": 0.0,
                "created": entry.get("time", 0.0),
                "applied": entry.get("applied"),
                "candidates": entry.get("candidates", []),
            }
        )
    return {
        "format": FORMAT_TAG,
        "format_version": 2,
        "app_version": str(m.get("app_version", "0")),
        "saved": m.get("saved"),
        "image": {"width": m.get("width"), "height": m.get("height"), "channels": None, "dtype": None},
        "files": files,
        "icc_profile": True,  # v1 embedded it in image.png when there was one
        "source_path": m.get("source_path"),
        "params": m.get("parameters", {}),
        "generations": gens,
    }


def _migrate_v2(m: dict[str, Any]) -> dict[str, Any]:
    """Version 2: the canvas never changed size, so the original sits at (0, 0) and has the
    image's size, and every candidate too (no ``original_offset``/``original_size``/``size``)."""
    return {**m, "format_version": 3, "original_offset": [0, 0], "original_size": None}


#: version → function turning a manifest of that version into the next one.
_MIGRATIONS = {1: _migrate_v1, 2: _migrate_v2}


def migrate_manifest(manifest: dict[str, Any], name: str = "project") -> dict[str, Any]:
    """Bring a manifest of any supported older version up to `FORMAT_VERSION`."""
    version = _version_of(manifest, name)
    while version < FORMAT_VERSION:
        manifest = _MIGRATIONS[version](manifest)
        version = _version_of(manifest, name)
    return manifest
