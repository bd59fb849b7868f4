"""The headless CLI end to end: real photos, real PNG files, the real model loader.

Subprocess runs check what a user sees (exit code, one stderr line, no traceback) and that a
classical run never imports torch; in-process runs of `app.cli.main.main` cover the many input
errors and the diffusion paths cheaply (the tiny models load in well under a second).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from app.core import maskops
from app.cli.main import main
from app.core.metadata import A1111_KEY, JSON_KEY, read_params
from app.core.sdmeta.a1111 import parse_fields

ROOT = Path(__file__).resolve().parent.parent

#: Runs the CLI in a fresh interpreter and reports afterwards which heavy modules it imported.
WRAPPER = (
    "import sys; from app.cli.main import main; rc = main(sys.argv[1:]); "
    "sys.stderr.write('LOADED torch=%s qt=%s\\n' % ('torch' in sys.modules, 'PySide6' in sys.modules)); "
    "sys.exit(rc)"
)


def run_cli(args: list[str], env: dict | None = None, wrapper: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", WRAPPER, *args] if wrapper else [sys.executable, "-m", "app", *args]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """The astronaut photo with a hand-made "scratch" mask: a thick diagonal line and a blob."""
    folder = tmp_path_factory.mktemp("photo")
    image = data.astronaut()
    mask = np.zeros(image.shape[:2], np.uint8)
    for i in range(300):
        mask[100 + i, 60 + i : 66 + i] = 255
    mask[380:420, 350:430] = 255
    Image.fromarray(image).save(folder / "astronaut.png")
    Image.fromarray(mask).save(folder / "scratch.png")
    return folder / "astronaut.png", folder / "scratch.png", image, mask


def outside(mask: np.ndarray, blur: int = 4, grow: int = 0) -> np.ndarray:
    """Pixels the feathered mask does not touch: these must come out bit-identical."""
    return maskops.feather_full(maskops.grow(mask, grow), blur) == 0


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# -- classical ---------------------------------------------------------------------------------
def test_classical_inpaint_subprocess_writes_png_with_metadata_and_never_imports_torch(photo_files, tmp_path):
    image_path, mask_path, image, mask = photo_files
    out = tmp_path / "restored.png"
    proc = run_cli(["inpaint", "--image", str(image_path), "--mask", str(mask_path), "-o", str(out), "--seed", "42"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out}"  # a classical method has no seed to report
    assert "LOADED torch=False qt=False" in proc.stderr

    result = Image.open(out)
    assert A1111_KEY in result.info and JSON_KEY in result.info
    assert "Seed:" not in result.info[A1111_KEY] and "Steps:" not in result.info[A1111_KEY]
    assert "Sampler:" not in result.info[A1111_KEY] and "builtin:telea" in result.info[A1111_KEY]
    assert json.loads(result.info[JSON_KEY])["model"] == "builtin:telea"
    pixels = np.asarray(result)
    keep = outside(mask)
    assert np.array_equal(pixels[keep], image[keep])
    scratch = mask > 0
    # the scratch is repainted from its surroundings, not left as it was (a grey line would be "unchanged")
    assert np.any(pixels[scratch] != image[scratch])
    recalled = read_params(out)
    assert (recalled.seed, recalled.mode, recalled.batch_size) == (0, "inpaint", 1)  # the service's "no seed"


def test_samples_get_suffixes_and_consecutive_seeds(tiny_inpaint_model, tmp_path, capsys):
    image_path, mask_path, image, mask = small_photo(tmp_path)
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "out.png"),
               "--samples", "3", "--seed", "18446744073709551614", "--model", str(tiny_inpaint_model), "--prompt", "a cup",
               "--steps", "1", "--width", "256", "--height", "256", "--mask-blur", "0", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.strip().splitlines()
    seeds = [2**64 - 2, 2**64 - 1, 0]  # s, s+1, … 64-bit seeds, wrapping only past 2**64 - 1
    assert lines == [f"wrote {tmp_path / f'out-{i}.png'} (seed {s})" for i, s in enumerate(seeds)]
    assert {"out-0.png", "out-1.png", "out-2.png"} <= files_in(tmp_path)
    for i, s in enumerate(seeds):
        params = read_params(tmp_path / f"out-{i}.png")
        assert (params.seed, params.batch_size, params.model, params.mask_blur) == (s, 1, str(tiny_inpaint_model), 0)
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"out-{i}.png"))[mask == 0], image[mask == 0])


def test_classical_samples_make_one_image_without_a_seed(photo_files, tmp_path, capsys):
    """A classical method gives the same pixels for every seed: one file, no seed, batch 1."""
    image_path, mask_path, _, _ = photo_files
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "out.png"),
               "--samples", "3", "--seed", "7", "--steps", "40", "--model", "builtin:ns"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'out.png'}"
    assert files_in(tmp_path) == {"out.png"}
    text = Image.open(tmp_path / "out.png").info[A1111_KEY]
    assert not {"Seed", "Steps", "Sampler", "CFG scale"} & set(parse_fields(text))
    assert read_params(tmp_path / "out.png").batch_size == 1


def test_a_batch_is_written_whole_or_not_at_all(tiny_inpaint_model, tmp_path, capsys):
    image_path, mask_path, _, _ = small_photo(tmp_path)
    (tmp_path / "out-1.png").mkdir()  # the second file cannot be written
    before = files_in(tmp_path)
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "out.png"), "--samples", "3",
               "--model", str(tiny_inpaint_model), "--prompt", "a cup", "--steps", "1", "--width", "256", "--height", "256",
               "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 1 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"inpaint-studio: error: cannot write {tmp_path / 'out-1.png'}")
    assert files_in(tmp_path) == before  # out-0.png removed again, no temp files left


def test_progress_lines_on_stderr_when_asked(photo_files, tmp_path, capsys):
    image_path, mask_path, _, _ = photo_files
    assert main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "o.png"), "--progress"]) == 0
    assert "step 1/1" in capsys.readouterr().err.splitlines()


# -- bad input: exit 2, one line, nothing written -------------------------------------------------
BAD_CASES = {
    "missing image": (["-i", "{dir}/nope.png"], "nope.png: file not found"),
    "not an image": (["-i", "{dir}/text.png"], "not an image"),
    "mask of another size": (["-m", "{dir}/small_mask.png"], "the mask is 64×64 but the image is 512×512"),
    "empty mask": (["-m", "{dir}/empty_mask.png"], "is empty"),
    "missing mask file": (["-m", "{dir}/nomask.png"], "nomask.png: file not found"),
    "steps out of range": (["--steps", "500"], "--steps 500 is not valid: must be from 1 to 150"),
    "guidance not a number": (["--guidance", "lots"], "argument --guidance: invalid float value: 'lots'"),
    "seed below -1": (["--seed", "-5"], "--seed -5 is not valid"),
    "too many samples": (["--samples", "9"], "--samples 9 is not valid: must be from 1 to 8"),
    "width not multiple of 8": (["--width", "300"], "--width 300 is not valid: must be a multiple of 8"),
    "unknown inpaint area": (["--inpaint-area", "half"], "--inpaint-area 'half' is not valid: one of masked, whole"),
    "unknown colour match": (["--color-match", "sometimes"], "--color-match 'sometimes' is not valid: one of auto, on, off"),
    "unknown scheduler": (["--scheduler", "Euler b"], "--scheduler 'Euler b' is not valid: a sampler (DDIM"),
    "output not png": (["-o", "{dir}/out.jpg"], "the output is a PNG file"),
    "output folder missing": (["-o", "{dir}/no/such/out.png"], "does not exist"),
    "model not found": (["--model", "{dir}/no-model", "--prompt", "a cat"], "model not found"),
    "not a model file": (["--model", "{dir}/text.png", "--prompt", "a cat"], "not a model file"),
    "diffusion without prompt": (["--model", "{dir}/sd15"], "--prompt '' is not valid: required with a diffusion model"),
    "unknown option": (["--colour", "red"], "unrecognized arguments: --colour red"),
}


@pytest.fixture()
def bad_inputs(photo_files, tmp_path) -> Path:
    image_path, mask_path, _, _ = photo_files
    (tmp_path / "text.png").write_text("this is not a PNG")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "small_mask.png")
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(tmp_path / "empty_mask.png")
    # an SD 1.5 folder as far as its configs tell (its weights are never reached)
    (tmp_path / "sd15" / "unet").mkdir(parents=True)
    (tmp_path / "sd15" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    (tmp_path / "sd15" / "unet" / "config.json").write_text(json.dumps({"in_channels": 9, "cross_attention_dim": 768}))
    return tmp_path


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, photo_files, bad_inputs, capsys):
    image_path, mask_path, _, _ = photo_files
    override, expected = BAD_CASES[case]
    override = [a.replace("{dir}", str(bad_inputs)) for a in override]
    args = {"-i": str(image_path), "-m": str(mask_path), "-o": str(bad_inputs / "out.png")}
    extra = []
    it = iter(override)
    for flag in it:
        if flag in args:
            args[flag] = next(it)
        else:
            extra.append(flag)
    before = files_in(bad_inputs)
    argv = ["inpaint"] + [x for kv in args.items() for x in kv] + extra
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("inpaint-studio: error: "), captured.err
    assert expected.lower() in lines[0].lower()
    assert captured.out == ""
    assert files_in(bad_inputs) == before


def test_bad_input_from_the_console_is_one_line_without_traceback(tmp_path):
    proc = run_cli(["inpaint", "-i", str(tmp_path / "missing.jpg"), "-m", str(tmp_path / "m.png"),
                    "-o", str(tmp_path / "o.png")], wrapper=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"inpaint-studio: error: missing.jpg: file not found ({tmp_path / 'missing.jpg'}); check the path."
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_model_path_fails_fast_without_importing_torch(photo_files, tmp_path):
    image_path, mask_path, _, _ = photo_files
    proc = run_cli(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "o.png"),
                    "--model", str(tmp_path / "sd15.safetensors"), "--prompt", "a cat"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith("inpaint-studio: error: model not found: ")
    assert "LOADED torch=False" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_img2img_needs_a_diffusion_model(photo_files, tmp_path, capsys):
    image_path, _, _, _ = photo_files
    assert main(["img2img", "-i", str(image_path), "-o", str(tmp_path / "o.png")]) == 2
    assert "img2img needs a diffusion model" in capsys.readouterr().err
    assert main(["img2img", "-i", str(image_path), "-o", str(tmp_path / "o.png"), "--model", "builtin:ns"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_unknown_command_word_is_a_usage_error_not_an_editor_start(capsys):
    assert main(["inpiant"]) == 2
    assert "'inpiant' is neither a command" in capsys.readouterr().err


def test_version_lists_components():
    proc = run_cli(["--version"], wrapper=True)
    assert proc.returncode == 0
    import app

    assert proc.stdout.splitlines()[0] == f"Inpaint Studio: {app.__version__}"
    for name in ("Python", "torch", "diffusers", "PySide6", "Device: torch not loaded yet"):
        assert name in proc.stdout
    assert "LOADED torch=False" in proc.stderr


# -- diffusion ---------------------------------------------------------------------------------
def small_photo(folder: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    image = np.asarray(Image.fromarray(data.coffee()).resize((96, 64), Image.Resampling.LANCZOS))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[20:44, 30:70] = 255
    Image.fromarray(image).save(folder / "coffee.png")
    Image.fromarray(mask).save(folder / "coffee_mask.png")
    return folder / "coffee.png", folder / "coffee_mask.png", image, mask


def test_diffusion_inpaint_with_tiny_model(tiny_inpaint_model, tmp_path, capsys):
    image_path, mask_path, image, mask = small_photo(tmp_path)
    out = tmp_path / "out.png"
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(out), "--model", str(tiny_inpaint_model),
               "--prompt", "a red cup", "--negative-prompt", "blurry", "--scheduler", "k_euler", "--steps", "2",
               "--seed", "7", "--samples", "2", "--width", "256", "--height", "256", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.splitlines() == [f"wrote {tmp_path / 'out-0.png'} (seed 7)", f"wrote {tmp_path / 'out-1.png'} (seed 8)"]
    first = np.asarray(Image.open(tmp_path / "out-0.png"))
    second = np.asarray(Image.open(tmp_path / "out-1.png"))
    keep = outside(mask)
    assert np.array_equal(first[keep], image[keep]) and np.array_equal(second[keep], image[keep])
    assert np.any(first[mask > 0] != second[mask > 0])  # two seeds, two different paintings
    info = Image.open(tmp_path / "out-0.png").info
    assert "Negative prompt: blurry" in info[A1111_KEY] and "Sampler: Euler" in info[A1111_KEY]
    recalled = read_params(tmp_path / "out-0.png")
    assert (recalled.prompt, recalled.scheduler, recalled.steps, recalled.seed) == ("a red cup", "Euler", 2, 7)
    assert recalled.model == str(tiny_inpaint_model)

    # same command, same seed: the same pixels (reproducible from the recorded parameters)
    again = tmp_path / "again.png"
    assert main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(again), "--model", str(tiny_inpaint_model),
                 "--prompt", "a red cup", "--negative-prompt", "blurry", "--scheduler", "Euler", "--steps", "2",
                 "--seed", "7", "--width", "256", "--height", "256", "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), first)


def test_img2img_with_tiny_base_model(tiny_base_model, tmp_path, capsys):
    image_path, _, image, _ = small_photo(tmp_path)
    out = tmp_path / "variation.png"
    rc = main(["img2img", "-i", str(image_path), "-o", str(out), "--model", str(tiny_base_model), "--prompt", "coffee",
               "--steps", "4", "--strength", "0.5", "--seed", "3", "--device", "cpu", "--width", "256", "--height", "256"])
    assert rc == 0, capsys.readouterr().err
    result = np.asarray(Image.open(out))
    assert result.shape == image.shape and np.any(result != image)
    params = read_params(out)
    assert (params.mode, params.strength, params.seed) == ("img2img", 0.5, 3)
    assert "Denoising strength: 0.5" in Image.open(out).info[A1111_KEY]


def test_ctrl_c_cancels_within_a_step_and_writes_nothing(tiny_inpaint_model, tmp_path, monkeypatch):
    """A real SIGINT, sent when the first step is reported, as a user pressing Ctrl+C would."""
    image_path, mask_path, _, _ = small_photo(tmp_path)

    class InterruptOnFirstStep:
        def __init__(self):
            self.text = ""

        def write(self, s: str) -> int:
            self.text += s
            if "step 1/" in s:
                os.kill(os.getpid(), signal.SIGINT)
            return len(s)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    err = InterruptOnFirstStep()
    monkeypatch.setattr(sys, "stderr", err)
    before = signal.getsignal(signal.SIGINT)
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "o.png"), "--progress",
               "--model", str(tiny_inpaint_model), "--prompt", "x", "--steps", "50", "--device", "cpu",
               "--width", "256", "--height", "256"])
    assert rc == 130
    steps = [line for line in err.text.splitlines() if line.startswith("step ")]
    assert steps[0] == "step 1/50" and len(steps) <= 2  # stopped within one step of the Ctrl+C
    assert err.text.splitlines()[-1] == "inpaint-studio: error: cancelled; nothing was written"
    assert not (tmp_path / "o.png").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored


def test_pickle_checkpoint_refused_without_allow_pickle(tmp_path, capsys):
    image_path, mask_path, _, _ = small_photo(tmp_path)
    (tmp_path / "model.ckpt").write_bytes(b"not really a pickle")
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(tmp_path / "o.png"),
               "--model", str(tmp_path / "model.ckpt"), "--prompt", "x"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and len(err) == 1
    assert "pickle" in err[0].lower() and "allow" in err[0].lower()
    assert not (tmp_path / "o.png").exists()


# -- models ------------------------------------------------------------------------------------
def test_models_lists_folders_cache_and_kinds_without_torch(tiny_inpaint_model, tiny_base_model, tmp_path):
    from tinymodels import make_fake_hf_cache

    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "my-inpainting").symlink_to(tiny_inpaint_model, target_is_directory=True)
    (models_dir / "old.ckpt").write_bytes(b"pickle")
    cache = tmp_path / "hf"
    make_fake_hf_cache(cache, "someone/tiny-base", tiny_base_model)
    env = {"INPAINT_STUDIO_MODELS": str(models_dir), "HF_HUB_CACHE": str(cache), "XDG_DATA_HOME": str(tmp_path / "data")}

    proc = run_cli(["models", "--json"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED torch=False" in proc.stderr
    listing = json.loads(proc.stdout)
    assert str(models_dir) in listing["models_dirs"] and listing["hf_cache"] == str(cache)
    by_ref = {m["ref"]: m for m in listing["models"]}
    assert by_ref["builtin:telea"]["kind"] == "classical"
    inpaint = by_ref[str(models_dir / "my-inpainting")]
    assert (inpaint["kind"], inpaint["inpainting"], inpaint["family"], inpaint["usable"]) == ("diffusers", True, "sd1", True)
    base = by_ref["someone/tiny-base"]
    assert (base["kind"], base["inpainting"], base["usable"]) == ("hf_cache", False, True)
    assert by_ref[str(models_dir / "old.ckpt")]["usable"] is False

    text = run_cli(["models"], env=env, wrapper=False)
    assert text.returncode == 0
    assert f"models folder       {models_dir}" in text.stdout
    assert f"Hugging Face cache  {cache}" in text.stdout
    assert "my-inpainting  [diffusers folder, SD 1.x, inpainting model (9-channel UNet)]" in text.stdout
    assert "someone/tiny-base  [Hugging Face cache, SD 1.x, base model" in text.stdout
    assert "Skipped: found but will not load (1):" in text.stdout and "pickle" in text.stdout


def test_versions_name_the_device_once_torch_is_loaded(tiny_inpaint_model):
    """The About dialog's "device in use": unknown until a model loaded torch, then named."""
    import importlib.metadata

    import torch

    from app.core import versions

    info = versions.versions()
    assert info["torch"] == importlib.metadata.version("torch")
    expected = "cuda:" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu (")
    assert versions.device_in_use().startswith(expected)
    assert info["Device"] == versions.device_in_use()



def test_a_reader_that_leaves_early_is_not_an_internal_error(monkeypatch, capsys):
    """`inpaint-studio models | head -1`: writing after the reader left raises BrokenPipeError;
    that ends the command quietly (exit 141, as a shell reports SIGPIPE), never 'internal error'."""
    import io
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left

    class ClosedPipe(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return write_end

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    try:
        code = main(["models"])
    finally:
        os.close(write_end)
    err = capsys.readouterr().err
    assert code == 141 and "internal error" not in err and "Traceback" not in err


def test_the_input_pixels_are_freed_before_the_output_is_encoded(tmp_path, monkeypatch):
    """Peak memory at 24 MP: the decoded input (72 MB) must be gone before the encoder allocates
    its buffers. A stray reference in the CLI once kept it (+70 MB peak RSS, bench_cli_floor)."""
    import gc
    import weakref

    from app.core import imageio
    import app.service as service

    Image.fromarray(data.astronaut()[:64, :64]).save(tmp_path / "in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    inputs: list = []
    real_load, real_save = imageio.load_image, service.save_outputs

    def load(path, **kwargs):
        loaded = real_load(path, **kwargs)
        if Path(path).name == "in.png":
            inputs.append(weakref.ref(loaded.pixels))
        return loaded

    def save(*args, **kwargs):
        gc.collect()
        assert inputs and inputs[0]() is None, "the input image is still referenced while encoding"
        return real_save(*args, **kwargs)

    monkeypatch.setattr(imageio, "load_image", load)
    monkeypatch.setattr(service, "save_outputs", save)
    out = tmp_path / "out.png"
    assert main(["inpaint", "-i", str(tmp_path / "in.png"), "-m", str(tmp_path / "mask.png"), "-o", str(out),
                 "--model", "builtin:telea"]) == 0
    assert out.is_file()
