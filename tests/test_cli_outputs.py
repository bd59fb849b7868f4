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
