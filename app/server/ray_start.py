"""Starting Ray and Serve for ``inpaint-studio serve --ray`` (`app.server.ray_app`): join a
cluster or start a local one on loopback, then Serve's HTTP proxy."""

from __future__ import annotations

import logging
import os
from typing import Any

from ray import serve

#: Where a local cluster's nodes say they are (and the ports Ray lets us place listen): loopback.
LOOPBACK = "127.0.0.1"


def start(address: str | None, host: str, port: int, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or RAY_ADDRESS, or a running ``ray start`` cluster, as
    ``ray.init`` finds them), else start a local one on loopback; then start Serve's HTTP proxy
    on ``host:port`` only. Quiet: Ray's and Serve's start-up chatter stays at WARNING. Returns
    True when it started a local cluster. Ray's core ports (GCS, raylet, workers, agents) bind
    every interface whatever we ask: docs/DEPLOY.md names them and the firewall rule."""
    import ray

    local = _starts_local(address)
    options: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                                   configure_logging=False)
    if local:
        options.update(address="local", _node_ip_address=LOOPBACK, num_cpus=num_cpus)
    else:
        options.update(address=address)
    for name in ("ray", "ray.serve"):  # "Started Serve", "New http_options … will not be applied" on every start
        logging.getLogger(name).setLevel(logging.WARNING)
    ray.init(**options)
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
    return local


def _starts_local(address: str | None) -> bool:
    """Whether ``ray.init(address)`` would start a local cluster, by Ray's own rule (a private
    helper; where it is gone, the documented part of the rule: no address, no RAY_ADDRESS)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return address == "local" or (address is None and not os.environ.get("RAY_ADDRESS"))
    return canonicalize_bootstrap_address(address) is None
