"""``serve --ray`` without a cluster: Serve's limits on the ingress leave admission to the app,
and the CLI starts a local (loopback) cluster only where Ray itself would start one."""

from __future__ import annotations

from app.server.config import ServerConfig
from app.server.ray_app import INGRESS_HEADROOM, _starts_local, ingress_limits


def test_every_request_the_queue_can_hold_reaches_the_app_with_room_for_probes(tmp_path):
    limits = ingress_limits(ServerConfig(data_dir=tmp_path, queue_depth=2, concurrency=2))
    # 2 waiting + 2 running jobs, and still room for probes, polls and requests about to get 429
    assert limits["max_ongoing_requests"] == 2 + 2 + INGRESS_HEADROOM
    assert limits["max_queued_requests"] == INGRESS_HEADROOM > 0  # bounded: never Serve's unbounded -1


def test_a_local_cluster_only_when_no_cluster_is_named(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert _starts_local("local")
    assert not _starts_local("10.0.0.5:6379")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert not _starts_local(None)  # RAY_ADDRESS is joined, as ray.init does
