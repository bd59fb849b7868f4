"""Run the app under uvicorn: the one blocking call behind ``inpaint-studio serve``."""

from __future__ import annotations

import logging

from app.server.config import ServerConfig


def serve(config: ServerConfig, log_level: str = "info") -> None:
    """Serve until Ctrl+C (uvicorn handles the signal and runs the app's shutdown, which cancels
    queued and running jobs; their records say so, finished ones stay on disk)."""
    import uvicorn

    from app.server.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, timeout_graceful_shutdown=5)
