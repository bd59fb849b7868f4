"""The CLI never destroys a file silently: -o = -i, a read-only output, a symlink or hard-linked
output are refused unless --force, each with one line; a second CLI on the same output says so."""

import os

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main
from app.cli.outputs import OutputRefused, output_lock


@pytest.fixture
def files(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def _run(capsys, files, out, *extra):
    code = main(["inpaint", "-i", str(files / "in.png"), "-m", str(files / "mask.png"), "-o", str(out), *extra])
    return code, capsys.readouterr().err.strip()


def test_output_equal_to_input_is_refused_unless_forced(files, capsys):
    before = (files / "in.png").read_bytes()
    code, err = _run(capsys, files, files / "in.png")
    assert code == 2 and "also an input" in err and len(err.splitlines()) == 1
    assert (files / "in.png").read_bytes() == before
    code, _ = _run(capsys, files, files / "in.png", "--force")
    assert code == 0 and (files / "in.png").read_bytes() != before


def test_read_only_output_is_refused_unless_forced(files, capsys):
    out = files / "out.png"
    out.write_bytes(b"keep me")
    os.chmod(out, 0o444)
    code, err = _run(capsys, files, out)
    assert code == 2 and "read-only" in err
    assert out.read_bytes() == b"keep me"
    code, _ = _run(capsys, files, out, "--force")
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"


def test_symlink_and_hard_link_outputs_are_refused(files, capsys):
    target = files / "target.png"
    target.write_bytes(b"old")
    link = files / "link.png"
    link.symlink_to(target)
    code, err = _run(capsys, files, link)
    assert code == 2 and "symbolic link" in err and link.is_symlink() and target.read_bytes() == b"old"
    hard = files / "hard.png"
    os.link(target, hard)
    code, err = _run(capsys, files, hard)
    assert code == 2 and "hard link" in err and target.read_bytes() == b"old"
    code, _ = _run(capsys, files, hard, "--force")
    assert code == 0 and target.read_bytes() == b"old" and hard.read_bytes()[:4] == b"\x89PNG"


def test_a_second_writer_of_the_same_output_is_told(files):
    out = files / "out.png"
    with output_lock(out):
        with pytest.raises(OutputRefused, match=f"pid {os.getpid()}"):
            with output_lock(out):
                pass
    with output_lock(out):  # released: usable again
        pass
    assert not (files / ".out.png.lock").exists()


def test_a_planted_lock_symlink_destroys_nothing(files, capsys):
    """Issue 32: ``ln -s notes/victim.txt .out.png.lock`` made a run overwrite victim.txt with a pid."""
    (files / "notes").mkdir()
    victim = files / "notes" / "victim.txt"
    victim.write_text("my notes")
    lock = files / ".out.png.lock"
    lock.symlink_to(victim)
    code, err = _run(capsys, files, files / "out.png")
    assert code == 2 and "symbolic link" in err and len(err.splitlines()) == 1
    assert victim.read_text() == "my notes" and lock.is_symlink() and not (files / "out.png").exists()
    dangling = files / ".new.png.lock"
    dangling.symlink_to(files / "notes" / "created.txt")
    code, err = _run(capsys, files, files / "new.png")
    assert code == 2 and not (files / "notes" / "created.txt").exists()


def test_a_planted_hard_link_or_folder_as_lock_is_refused_untouched(files, capsys):
    victim = files / "victim.txt"
    victim.write_text("keep")
    os.link(victim, files / ".out.png.lock")
    code, err = _run(capsys, files, files / "out.png")
    assert code == 2 and "hard links" in err and victim.read_text() == "keep"
    (files / ".dir.png.lock").mkdir()
    code, err = _run(capsys, files, files / "dir.png")
    assert code == 2 and "is a folder" in err and "internal error" not in err
    assert (files / ".dir.png.lock").is_dir()


def test_a_stale_lock_of_a_killed_run_is_reused_and_removed(files, capsys):
    stale = files / ".out.png.lock"
    stale.write_text("999999")
    code, err = _run(capsys, files, files / "out.png")
    assert code == 0, err
    assert not stale.exists() and (files / "out.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("length", [242, 250, 255])
def test_output_names_up_to_the_file_system_limit_work(files, capsys, length):
    name = "é" * ((length - 4) // 2) + "x" * ((length - 4) % 2) + ".png"
    assert len(os.fsencode(name)) == length
    out = files / name
    code, err = _run(capsys, files, out)
    assert code == 0, err
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in files.iterdir()) == sorted(["in.png", "mask.png", name])  # no lock or temp left


def test_symlink_loops_as_output_or_input_get_one_line(files, capsys):
    loop = files / "loop.png"
    loop.symlink_to(files / "loop.png")
    code, err = _run(capsys, files, loop)
    assert code == 2 and "symbolic link" in err and "internal error" not in err
    code = main(["inpaint", "-i", str(loop), "-m", str(files / "mask.png"), "-o", str(files / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "internal error" not in err and len(err.splitlines()) == 1 and "loop.png" in err
