"""The CLI's --soft, --reference and --ip-adapter: parsed into `GenerationParams`, a grey mask
kept grey, and the record written to the PNG."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from app.cli.errors import CliError
from app.cli.guide_args import add_guide_args, guide_params, split_reference
from app.cli.main import main
from app.core.guides import Reference, SoftInpainting
from app.core.metadata import read_params


def parse(*args: str) -> dict:
    parser = argparse.ArgumentParser()
    add_guide_args(parser)
    return guide_params(parser.parse_args(list(args)))


def test_options_become_params_fields():
    assert parse() == {}
    assert parse("--soft") == {"soft_inpainting": SoftInpainting()}
    assert parse("--soft", "preservation_strength=1,difference-threshold=2") == {
        "soft_inpainting": SoftInpainting(preservation_strength=1.0, difference_threshold=2.0)}
    assert parse("--reference", "look.png:0.4", "--ip-adapter", "my-ip.bin") == {"reference": Reference("my-ip.bin", 0.4)}
    assert parse("--reference", "look.png")["reference"] == Reference("ip-adapter_sd15", 0.6)
    assert split_reference("C:\\pics\\look.png") == ("C:\\pics\\look.png", 0.6)
    assert split_reference("C:\\pics\\look.png:1.2") == ("C:\\pics\\look.png", 1.2)
    with pytest.raises(CliError, match="FIELD=NUMBER"):
        parse("--soft", "preservation_strength")
    with pytest.raises(CliError, match="needs --reference"):
        parse("--ip-adapter", "x.bin")


def test_soft_inpaint_run_keeps_zero_pixels_and_records_the_settings(tiny_base_model, tmp_path, capsys):
    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([yy * 5, xx * 4, xx + yy], -1).astype(np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[:, 16:32], mask[:, 32:] = 64, 255  # a 25 % band: a hard mask would drop it
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    rc = main(["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"), "-o", str(tmp_path / "out.png"),
               "--model", str(tiny_base_model), "--prompt", "a wall", "--steps", "2", "--seed", "5", "--mask-blur", "0",
               "--width", "256", "--height", "256", "--device", "cpu", "--soft", "difference_threshold=0"])
    assert rc == 0, capsys.readouterr().err
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert np.array_equal(out[:, :16], image[:, :16])
    assert not np.array_equal(out[:, 16:32], image[:, 16:32])
    assert read_params(tmp_path / "out.png").soft_inpainting == SoftInpainting(difference_threshold=0.0)
