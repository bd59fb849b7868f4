"""The generation service: the one Qt-free path from a request to candidates and records that
every front end (window, CLI, self-test, HTTP server) calls. Importing it loads no torch.

It is also the front ends' only door to the inference layer (an import-linter contract): what
they need from it (load options, capabilities, progress and cancel, the typed errors, thread
settings, the offline model catalogue, click segmentation, the remote server's client) is named
here. Names are loaded on first use, so ``import app.service`` stays cheap."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "GenerationRequest": "app.service.generation",
    "GenerationService": "app.service.generation",
    "FrontEnd": "app.service.fields",
    "FieldError": "app.service.fields",
    "build": "app.service.fields",
    "check": "app.service.fields",
    "outcome": "app.service.errors",
    "kind_of": "app.service.errors",
    "Progress": "app.inference.engine",
    "Cancelled": "app.inference.engine",
    "BackendRequest": "app.inference.engine",
    "LoadOptions": "app.inference.registry",
    "Capabilities": "app.inference.registry",
    "UserError": "app.core.errors",
    "DeviceError": "app.inference.errors",
    "GpuOutOfMemory": "app.inference.errors",
    "ModelLoadError": "app.inference.errors",
    "thread_count": "app.inference.threads",
    "use_threads": "app.inference.threads",
    "runtime": "app.inference.threads",
    "record_from_result": "app.service.records",
    "candidate_params": "app.service.records",
    "save_candidate": "app.service.records",
    "save_outputs": "app.service.records",
    "png_base64": "app.inference.remote",
}

#: Inference modules a front end uses as a whole (offline discovery and files: no torch at import).
_MODULES = {
    "catalog": "app.inference.diffusers.catalog",
    "controlnet": "app.inference.diffusers.controlnet",
    "network_files": "app.inference.diffusers.network_files",
    "restoration_files": "app.inference.restoration.files",
    "restoration_loader": "app.inference.restoration.loader",
    "lama": "app.inference.restoration.lama",
    "face_detection": "app.inference.restoration.detect",
    "remote": "app.inference.remote",
    "segment": "app.inference.segment",
    "diffusion_loader": "app.inference.diffusers.loader",
    "threads": "app.inference.threads",
}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
