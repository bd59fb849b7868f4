"""``python -m app --self-test``: what the packaging build runs on a fresh bundle, run here on the
checkout in a fresh interpreter (offscreen), checking the PNG it leaves behind ourselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from app.core import maskops
from app.widgets import selftest
from app.core.imageio import load_image
from app.core.metadata import A1111_KEY, JSON_KEY, read_params

ROOT = Path(__file__).resolve().parent.parent


def run_selftest(*args: str, home: Path) -> subprocess.CompletedProcess:
    # A private HOME/XDG config: the self-test must not need (or touch) the user's settings.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen", "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share")}
    return subprocess.run([sys.executable, "-m", "app", "--self-test", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_self_test_passes_and_leaves_a_correct_png(tmp_path):
    out = tmp_path / "selftest.png"
    proc = run_selftest(str(out), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Inpaint Studio ") and " self-test OK: " in lines[0]
    assert "MainWindow opened sample.png (offscreen" in lines[0]
    assert proc.stderr == ""  # Qt's offscreen warnings are not passed on

    sample = load_image(selftest.sample_path()).pixels
    result = np.asarray(Image.open(out))
    mask = selftest.builtin_mask(*sample.shape[:2])
    keep = maskops.feather_full(mask, 4) == 0
    assert result.shape == sample.shape
    assert np.array_equal(result[keep], sample[keep])
    assert np.any(result[mask > 0] != sample[mask > 0])
    info = Image.open(out).info
    assert "Seed:" not in info[A1111_KEY] and "Steps:" not in info[A1111_KEY] and JSON_KEY in info  # classical: no seed
    assert read_params(out).model == "builtin:telea"
    # the user's settings were not written
    assert not list((tmp_path / "home").rglob("*.ini")) and not list((tmp_path / "home").rglob("*.conf"))


def test_self_test_failure_is_one_line_and_nonzero(tmp_path):
    proc = run_selftest(str(tmp_path / "no" / "such" / "folder" / "out.png"), home=tmp_path / "home")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "self-test FAILED: writing " in lines[0], proc.stderr
    assert proc.stdout == ""


def test_sample_and_builtin_mask_fit_the_test():
    """The bundled sample is small (it ships in every installer) and the mask lies inside it."""
    path = selftest.sample_path()
    assert path.stat().st_size < 300 * 1024
    pixels = load_image(path).pixels
    mask = selftest.builtin_mask(*pixels.shape[:2])
    fraction = np.count_nonzero(mask) / mask.size
    assert 0.02 < fraction < 0.2
    assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()


def test_self_test_checks_the_diffusion_stack_when_asked(tmp_path):
    """Bundles run this part by default (it is what a packaging mistake breaks); here it is forced."""
    env_home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-m", "app", "--self-test"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen",
                                            "HOME": str(env_home), "INPAINT_STUDIO_SELFTEST_DIFFUSION": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "diffusion stack importable (torch " in proc.stdout and ", device " in proc.stdout
    assert proc.stderr == ""  # no library warnings or loading bars
