"""Readiness for ``/readyz``: can this server run a job now without first loading a model?

``/healthz`` (liveness) says the process answers; ``/readyz`` says a generator is loaded. Both
only read state here, never wait behind a job, so a probe answers in milliseconds under load.
A plain server is ready once `Preload` has loaded the default model (or at once with
``--no-preload``); a Ray ingress asks its own check (`ClusterService.not_ready`)."""

from __future__ import annotations

import logging
import threading

from app.server.errors import scrub_paths
from app.service.generation import GenerationService

log = logging.getLogger(__name__)


class Preload:
    """Loads the default model on a thread at start (the first request then does not pay the
    load); ``not_ready()`` is None once loaded, else why not."""

    def __init__(self, service: GenerationService, model_ref: str, enabled: bool):
        self.service, self.model_ref = service, model_ref
        self._done = threading.Event()
        self._error: str | None = None
        if not enabled:
            self._done.set()

    def start(self) -> None:
        if not self._done.is_set():
            threading.Thread(target=self._load, name="inpaint-preload", daemon=True).start()

    def _load(self) -> None:
        try:
            self.service.preload(self.model_ref)
        except Exception as exc:  # the server still answers; readiness says why it cannot run jobs
            self._error = scrub_paths(f"loading the default model failed: {getattr(exc, 'message', exc)}")
            log.error("%s", self._error)
        finally:
            self._done.set()

    def not_ready(self) -> str | None:
        if not self._done.is_set():
            return "loading the default model"
        return self._error
