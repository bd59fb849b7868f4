"""SIGKILL the app mid-session, start it again, and find the work — pixels, mask, params identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

DRIVER = Path(__file__).resolve().parent / "crash_driver.py"
ROOT = DRIVER.parent.parent


def _env(data: Path) -> dict:
    env = dict(os.environ, INPAINT_STUDIO_DATA=str(data), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(mode: str, out: Path, data: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), mode, str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(data), cwd=ROOT, text=True,
    )


def _wait_ready(proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "READY":
            return
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"driver did not get ready: {line!r} {proc.stderr.read()[-3000:]}")


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _recover(out: Path, data: Path, *flags: str) -> None:
    proc = _start("recover", out, data, *flags)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]


@pytest.mark.parametrize("ui", ["window", "document"])
def test_sigkill_after_work_then_restart_finds_everything(tmp_path, ui):
    """``window``: the real MainWindow (open, paint, Generate on its worker, Apply) and its recovery
    hook; ``document``: the bare Document + RecoveryController."""
    data = tmp_path / "data"
    flags = ["--window"] if ui == "window" else []
    proc = _start("work", tmp_path, data, *flags)
    _wait_ready(proc)
    _kill(proc)
    recovery = data / "recovery"
    assert len(list(recovery.glob("session-*.inpaint"))) == 1  # the killed session's work is on disk

    _recover(tmp_path, data, *flags)
    expected = np.load(tmp_path / "expected.npz")
    restored = np.load(tmp_path / "restored.npz")
    for key in ("pixels", "mask", "original", "candidate"):
        assert expected[key].dtype == restored[key].dtype and np.array_equal(expected[key], restored[key]), key
    assert expected["mask"][110, 20] == 255 and expected["mask"].max() == 255  # both kinds of mask work
    assert not np.array_equal(expected["pixels"], expected["original"])  # the applied result
    exp = json.loads((tmp_path / "expected.json").read_text())
    got = json.loads((tmp_path / "restored.json").read_text())
    assert got["params"] == exp["params"] and got["generations"] == [exp["gen_params"]]
    assert got["applied"] == [exp["applied"]] == [0]
    if ui == "window":  # the restored params are back in the panel
        assert got["shown"] == exp["params"]
    # the restoring session exited cleanly: nothing is offered a third time
    assert list(recovery.iterdir()) == []


def test_sigkill_after_undoing_an_expansion_restores_the_undone_canvas_and_the_stroke(tmp_path):
    """Issue 25: after Expand → Generate → Discard → Undo, every autosave failed and a crash
    restored the stale expanded canvas without the later stroke."""
    data = tmp_path / "data"
    proc = _start("undo-expand", tmp_path, data, "--window")
    _wait_ready(proc)
    _kill(proc)
    _recover(tmp_path, data, "--window")
    expected, restored = np.load(tmp_path / "expected.npz"), np.load(tmp_path / "restored.npz")
    assert restored["pixels"].shape == (160, 200, 3)  # not the 264-wide expanded canvas
    for key in ("pixels", "mask", "original", "candidate"):
        assert np.array_equal(expected[key], restored[key]), key
    assert restored["mask"][40, 55] == 255  # the stroke made after the undo
    assert restored["candidate"].shape == (160, 264, 3)  # the parked candidate came back too


@pytest.mark.parametrize("delay", [0.05, 0.35, 0.8])
def test_sigkill_during_autosave_writes_leaves_a_complete_consistent_state(tmp_path, delay):
    data = tmp_path / "data"
    proc = _start("hammer", tmp_path, data)
    _wait_ready(proc)
    time.sleep(delay)  # somewhere in the middle of the next writes
    _kill(proc)
    _recover(tmp_path, data)
    restored = np.load(tmp_path / "restored.npz")
    value = int(restored["pixels"][0, 0, 0])
    assert (restored["pixels"] == value).all()  # one whole snapshot, never half of two
    assert (restored["mask"] == (255 if value % 2 else 0)).all()
    params = json.loads((tmp_path / "restored.json").read_text())["params"]
    assert params["steps"] == 1 + value % 150
    assert list((data / "recovery").iterdir()) == []  # temp files of the killed write are gone too
