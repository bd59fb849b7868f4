"""``inpaint-studio info``: format, parameters, model, and whether a file can be re-run here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from test_cli import run_cli

from app.cli.errors import CliError
from app.cli.generate import params_from_args
from app.cli.main import build_parser, main
from app.core.imageio import save_image
from app.core.metadata import format_a1111
from app.core.params import GenerationParams

DATA = Path(__file__).parent / "data" / "metadata"


def test_info_json_finds_the_local_model_and_never_imports_torch(tiny_inpaint_model, tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "realistic_realisticVisionV20_v20").symlink_to(tiny_inpaint_model, target_is_directory=True)
    ours = save_image(tmp_path / "ours.png", np.zeros((8, 8, 3), np.uint8),
                      params=GenerationParams(prompt="p", seed=2**64 - 1,
                                              model=str(models_dir / "realistic_realisticVisionV20_v20")))
    env = {"INPAINT_STUDIO_MODELS": str(models_dir), "HF_HUB_CACHE": str(tmp_path / "hf"), "XDG_DATA_HOME": str(tmp_path)}
    proc = run_cli(["info", "--json", str(DATA / "automatic1111_cropped.jpg"), str(ours),
                    str(DATA / "fooocus1_cropped.png")], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED torch=False qt=False" in proc.stderr
    a1111, mine, fooocus = json.loads(proc.stdout)
    assert a1111["format"] == "AUTOMATIC1111" and a1111["parameters"]["Seed"] == "235284042"
    assert a1111["model"] == {"name": "realistic_realisticVisionV20_v20", "hash": "c0d1994c73",
                              "local": str(models_dir / "realistic_realisticVisionV20_v20")}
    assert a1111["can_rerun"] is True and a1111["recall"]["scheduler"] == "UniPC"
    assert (mine["format"], mine["recall"]["seed"], mine["can_rerun"]) == ("Inpaint Studio", 2**64 - 1, True)
    assert fooocus["can_rerun"] is False
    assert fooocus["missing"] == ["model 'juggernautXL_v8Rundiffusion' is not among the local models (see 'inpaint-studio models')"]


def test_info_text_offers_comfyui_samplers_and_reads_the_chosen_one(tmp_path, capsys):
    graph = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a boat"}},
             "2": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 9, "cfg": 3.0, "sampler_name": "euler",
                                                        "scheduler": "karras", "positive": ["1", 0], "negative": ["1", 0]}},
             "3": {"class_type": "KSampler", "inputs": {"seed": 8, "steps": 9, "cfg": 3.0, "sampler_name": "euler",
                                                        "scheduler": "normal", "positive": ["1", 0], "negative": ["1", 0]}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(tmp_path / "two.png", pnginfo=info)
    assert main(["info", str(tmp_path / "two.png")]) == 0
    out = capsys.readouterr().out
    assert "ComfyUI workflow with 2 samplers: choose one" in out
    assert "(--sampler 3): KSampler #3: seed 8" in out
    assert main(["info", "--sampler", "2", str(tmp_path / "two.png")]) == 0
    out = capsys.readouterr().out
    assert "recall sets:" in out and "sampler=Euler, schedule_type=Karras" in out and "seed=7" in out


def test_info_on_a_missing_file_fails_with_one_line(tmp_path, capsys):
    shutil.copy(DATA / "novelai1_cropped.png", tmp_path / "n.png")
    assert main(["info", str(tmp_path / "n.png"), str(tmp_path / "missing.png")]) == 1
    out = capsys.readouterr().out
    assert "n.png: NovelAI" in out and "missing.png: none" in out and "cannot read" in out


def test_scheduler_option_accepts_every_name_recall_accepts():
    for name, canonical in (("euler_ancestral_karras", "Euler a Karras"), ("dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras"),
                            ("Euler Karras", "Euler Karras"), ("k_dpmpp_2m", "DPM++ 2M")):
        ns = build_parser().parse_args(["inpaint", "-i", "x.png", "-m", "m.png", "-o", "o.png", "--scheduler", name])
        assert params_from_args(ns, "inpaint").scheduler == canonical


def test_schedule_option_sets_the_pair_written_to_the_png():
    def params(*args):
        ns = build_parser().parse_args(["inpaint", "-i", "x.png", "-m", "m.png", "-o", "o.png", *args])
        return params_from_args(ns, "inpaint")

    assert params("--scheduler", "Euler a", "--schedule", "Karras").scheduler == "Euler a Karras"
    assert params("--scheduler", "dpmpp_2m_karras", "--schedule", "sgm_uniform").scheduler == "DPM++ 2M SGM Uniform"
    assert params("--scheduler", "Euler a Karras", "--schedule", "Automatic").scheduler == "Euler a"
    assert params("--schedule", "Align Your Steps").scheduler == "DPM++ 2M Align Your Steps"  # default sampler
    p = params("--scheduler", "Euler a", "--schedule", "Karras")
    assert "Sampler: Euler a, Schedule type: Karras," in format_a1111(p.replace(model="sd15.safetensors"), 512, 512)
    with pytest.raises(CliError, match="--schedule 'Cosine' is not valid with Euler a: one of Automatic, Uniform"):
        params("--scheduler", "Euler a", "--schedule", "Cosine")
    with pytest.raises(CliError, match="with PNDM: one of Automatic$"):
        params("--scheduler", "PLMS", "--schedule", "Karras")


def test_a_classical_result_shows_and_recalls_only_what_decided_its_pixels(tmp_path, capsys):
    """Issue 25: the classical method's file listed "DPM++ 2M Karras", 25 steps and seed 0 — none
    of which it uses; its infotext, `info` and a recall leave them out."""
    from app.core.sdmeta import read_metadata

    out = save_image(tmp_path / "telea.png", np.zeros((8, 8, 3), np.uint8),
                     params=GenerationParams(model="builtin:telea", seed=0, mask_blur=6))
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mask_blur: 6" in text and "builtin:telea" in text
    for absent in ("scheduler", "steps", "seed", "guidance", "Karras", "sampler"):
        assert absent not in text, absent
    report = read_metadata(out)
    assert "mask_blur" in report.fields_set and not {"seed", "steps", "scheduler"} & report.fields_set
