"""The generation service: the one Qt-free path from a request to candidates and records that
every front end (window, CLI, self-test, HTTP server) calls. Importing it loads no torch.

Names are loaded on first use, so ``import app.service`` stays cheap."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "GenerationRequest": "app.service.generation",
    "GenerationService": "app.service.generation",
    "Progress": "app.inference.engine",
    "Cancelled": "app.inference.engine",
    "LoadOptions": "app.inference.registry",
    "Capabilities": "app.inference.registry",
    "UserError": "app.core.errors",
    "record_from_result": "app.service.records",
    "candidate_params": "app.service.records",
    "save_candidate": "app.service.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
