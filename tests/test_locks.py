"""`app.core.atomic.held_lock` / `open_lock_file`: the lock files of CLI outputs and downloads
never follow, truncate or delete what someone else put at their path (issue 32)."""

from __future__ import annotations

import os

import pytest

from app.core.atomic import LockBusy, LockFileRefused, held_lock, sibling_name


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    lock = tmp_path / ".x.lock"
    lock.symlink_to(victim)
    with pytest.raises(LockFileRefused, match="symbolic link"):
        with held_lock(lock):
            pass
    assert victim.read_text() == "keep" and lock.is_symlink()


def test_a_lock_holds_our_pid_tells_a_second_taker_and_goes_away(tmp_path):
    lock = tmp_path / ".x.lock"
    with held_lock(lock):
        assert lock.read_text() == str(os.getpid())
        with pytest.raises(LockBusy) as busy:
            with held_lock(lock):
                pass
        assert busy.value.holder == str(os.getpid())
    assert not lock.exists()


def test_a_file_of_someone_else_s_is_locked_but_never_rewritten_or_removed(tmp_path):
    other = tmp_path / ".x.lock"
    other.write_text("not a pid: someone's notes")
    with held_lock(other):
        pass
    assert other.read_text() == "not a pid: someone's notes"


def test_sibling_names_always_fit_the_file_system(tmp_path):
    for length in (1, 200, 240, 250, 255):
        dest = tmp_path / ("a" * (length - 4) + ".png")
        name = sibling_name(dest, ".lock")
        assert len(os.fsencode(name)) <= 255 and name.startswith(".") and name.endswith(".lock")
        (tmp_path / name).write_text("")  # the file system accepts it
    assert sibling_name(tmp_path / ("a" * 251 + ".png"), ".lock") != sibling_name(tmp_path / ("a" * 250 + "b.png"), ".lock")
