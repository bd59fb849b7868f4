"""The command line against hostile names and files (issue 32): sizes compared from headers
before decoding, names that are not UTF-8 or hold escape sequences printed safely, a full disk
said in words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from app.cli.main import main
from app.cli.terminal import safe

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def files(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def test_the_mask_size_is_compared_from_headers_before_anything_is_decoded(files, capsys, monkeypatch):
    from app.core import imageio

    Image.new("L", (20, 20), 255).save(files / "small.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded before the sizes were compared")

    monkeypatch.setattr(imageio, "load_image", no_decoding)
    code = main(["inpaint", "-i", str(files / "in.png"), "-m", str(files / "small.png"), "-o", str(files / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "The mask is 20×20 but the image is 64×48" in err


def test_exif_orientation_counts_in_the_header_comparison(files, capsys):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the 64×48 JPEG is shown 48×64
    Image.new("RGB", (64, 48), "gray").save(files / "turned.jpg", exif=exif)
    mask = np.zeros((64, 48), np.uint8)
    mask[10:20, 10:20] = 255
    Image.fromarray(mask).save(files / "tall.png")
    code = main(["inpaint", "-i", str(files / "turned.jpg"), "-m", str(files / "tall.png"), "-o", str(files / "o.png")])
    assert code == 0, capsys.readouterr().err


def test_safe_escapes_control_characters_and_undecodable_bytes():
    assert safe("a\x1b]0;title\x07b\x1b[2J\x9b") == "a\\x1b]0;title\\x07b\\x1b[2J\\x9b"
    assert safe(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert safe("naïve 猫 prompt") == "naïve 猫 prompt"
    assert safe("x" * 10 + "\x00") == "x" * 10 + "\\x00"


def test_info_text_never_prints_escape_sequences_but_json_keeps_them(files, capsys):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\x1b[2J\x1b]0;owned\x07\nSteps: 20, Sampler: Euler, Seed: 3, CFG scale: 7")
    Image.new("RGB", (8, 8)).save(files / "evil\x1b[31m.png", pnginfo=info)
    assert main(["info", str(files / "evil\x1b[31m.png")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "a cat\\x1b[2J" in out and "evil\\x1b[31m.png" in out
    assert main(["info", "--json", str(files / "evil\x1b[31m.png")]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["parameters"]["Prompt"].startswith("a cat\x1b[2J")


def test_a_non_utf8_output_name_on_a_strict_terminal_still_exits_0(files):
    out = os.fsencode(files) + b"/caf\xe9.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    run = subprocess.run([sys.executable, "-m", "app", "inpaint", "-i", str(files / "in.png"), "-m", str(files / "mask.png"),
                          "-o", out], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert os.path.exists(out) and b"caf\\xe9.png" in run.stdout


def test_batch_names_past_the_file_system_limit_are_refused_before_the_run(files, capsys):
    out = files / ("n" * 250 + ".png")  # 254 bytes: fine alone, OUT-0.png is 256
    model = files / "sd15"  # a diffusion model as far as its configs tell (a classical method makes one file)
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    (model / "unet" / "config.json").write_text(json.dumps({"in_channels": 9, "cross_attention_dim": 768}))
    code = main(["inpaint", "-i", str(files / "in.png"), "-m", str(files / "mask.png"), "-o", str(out), "--samples", "2",
                 "--model", str(model), "--prompt", "a cat"])
    err = capsys.readouterr().err
    assert code == 2 and "more than the 255 this folder allows" in err
    assert sorted(p.name for p in files.iterdir()) == ["in.png", "mask.png", "sd15"]
