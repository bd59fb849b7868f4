"""Saved files follow the umask like other tools; a replaced file keeps its mode; recovery files
stay private (issue: saved PNGs and projects were 0600 whatever the umask)."""

import os
import stat

import numpy as np
import pytest

from app.core.atomic import atomic_write_bytes
from app.core.imageio import save_image
from app.storage.project import ProjectState, save_project



def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_png_follows_the_umask(tmp_path, umask_022):
    out = tmp_path / "result.png"
    save_image(out, np.zeros((4, 4, 3), np.uint8))
    assert _mode(out) == 0o644


def test_new_file_with_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.bin") == 0o600


def test_replaced_file_keeps_its_mode(tmp_path, umask_022):
    out = tmp_path / "shared.png"
    out.write_bytes(b"old")
    os.chmod(out, 0o664)
    save_image(out, np.zeros((4, 4, 3), np.uint8))
    assert _mode(out) == 0o664
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_private_files_stay_0600_even_when_replacing(tmp_path, umask_022):
    out = tmp_path / "recovery.inpaint"
    out.write_bytes(b"old")
    os.chmod(out, 0o644)
    state = ProjectState(current=np.zeros((8, 8, 3), np.uint8), original=np.zeros((8, 8, 3), np.uint8),
                         mask=np.zeros((8, 8), np.uint8))
    save_project(out, state, private=True)
    assert _mode(out) == 0o600
    save_project(tmp_path / "project.inpaint", state)
    assert _mode(tmp_path / "project.inpaint") == 0o644
