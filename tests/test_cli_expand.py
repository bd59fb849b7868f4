"""CLI outpainting: --expand L,T,R,B grows the canvas, the old pixels stay where they moved to."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main


@pytest.fixture
def small_photo(tmp_path):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:64, :80]
    image = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=2).astype(np.uint8)
    image[20:30, 20:30] = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(image).save(path)
    return path, image


def test_classical_outpaint_without_a_mask(small_photo, tmp_path, capsys):
    path, image = small_photo
    out = tmp_path / "wide.png"
    assert main(["inpaint", "-i", str(path), "-o", str(out), "--expand", "37,0,64,5", "--expand-fill", "blur"]) == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (69, 181, 3)
    assert np.array_equal(result[0:64, 37:117], image)  # unmasked: kept exactly
    assert f"wrote {out}" in capsys.readouterr().out


def test_outpaint_keeps_the_given_mask_and_runs_a_diffusion_model(small_photo, tiny_inpaint_model, tmp_path):
    path, image = small_photo
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[20:30, 20:30] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "o.png"
    rc = main(["inpaint", "-i", str(path), "-m", str(tmp_path / "m.png"), "-o", str(out), "--expand", "0,16,16,0",
               "--model", str(tiny_inpaint_model), "--prompt", "more sky", "--steps", "2", "--seed", "1", "--mask-blur", "0"])
    assert rc == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (80, 96, 3)
    assert np.array_equal(result[16:, :80][:20], image[:20])  # rows above the masked square, untouched


@pytest.mark.parametrize(
    "args, message",
    [
        (["--expand", "1,2,3"], "LEFT,TOP,RIGHT,BOTTOM"),
        (["--expand", "0,0,8,0", "--expand-fill", "glitter"], "--expand-fill 'glitter' is not valid"),
        (["--expand", "0,0,90000,90000"], "MP limit"),
        ([], "inpaint needs a mask"),
    ],
)
def test_bad_expand_options_say_what_to_do(small_photo, tmp_path, capsys, args, message):
    path, _ = small_photo
    assert main(["inpaint", "-i", str(path), "-o", str(tmp_path / "o.png"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
