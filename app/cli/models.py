"""``inpaint-studio models``: what models exist and where we looked, without loading any (and
without importing torch)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from app.cli.errors import EXIT_OK
from app.cli.terminal import safe
from app.core.params import is_prompt_free


def add_command(sub: Any) -> None:
    models = sub.add_parser(
        "models",
        help="list the models found and where they were looked for",
        description="List the built-in methods and the diffusion models found in the models folder "
        "(INPAINT_STUDIO_MODELS) and the Hugging Face cache (HF_HUB_CACHE / HF_HOME), offline.",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=run_models)


def run_models(ns: argparse.Namespace) -> int:
    from app.service import catalog

    dirs = [str(d) for d in catalog.models_dirs()]
    cache = str(catalog.hf_cache_dir())
    rows = [_model_row(m) for m in catalog.discover_models()]
    restoration = _restoration_rows()
    from app.service import controlnet

    controlnets = controlnet.listing()
    if ns.json:
        print(json.dumps({"models_dirs": dirs, "hf_cache": cache, "models": rows, "restoration": restoration,
                          "controlnets": controlnets}, indent=2))
        return EXIT_OK
    _say("Looked in:")
    for d in dirs:
        _say(f"  models folder       {d}{'' if Path(d).is_dir() else '  (does not exist)'}")
    _say(f"  Hugging Face cache  {cache}{'' if Path(cache).is_dir() else '  (does not exist)'}  (offline: only what is already downloaded)")
    _say("  (add folders with INPAINT_STUDIO_MODELS, separated by " + repr(os.pathsep) + "; the cache follows HF_HUB_CACHE / HF_HOME)")
    usable = [r for r in rows if r["usable"]]
    unusable = [r for r in rows if not r["usable"]]
    _say(f"Usable models ({len(usable)}):")
    for r in usable:
        _say(f"  {r['name']}  [{_describe(r)}]")
        _say(f"      --model {_quote(r['ref'])}")
    if all(is_prompt_free(r["ref"]) for r in usable):
        _say("  No diffusion model found: put a diffusers folder or an SD 1.5 .safetensors file in a models folder,")
        _say("  or download one into the Hugging Face cache (huggingface-cli download ...).")
    if unusable:
        _say(f"Skipped: found but will not load ({len(unusable)}):")
        for r in unusable:
            _say(f"  {r['name']}  [{_describe(r)}]  {r['path']}")
            _say(f"      skipped: {r['note']}")
    if restoration:
        _say(f"Restoration models ({len(restoration)}; upscale / denoise / restore-faces / colorize --model NAME, "
             "inpaint --model lama:PATH):")
        for r in restoration:
            if r["usable"]:
                _say(f"  {r['name']}  [{r['architecture']}, {r['purpose']}, ×{r['scale']}]  {r['path']}")
                if "ref" in r:
                    _say(f"      --model {_quote(r['ref'])}")
            else:
                _say(f"  {r['name']}  {r['path']}")
                _say(f"      skipped: {r['note']}")
    _say_controlnets(controlnets, controlnet.controlnet_dirs())
    return EXIT_OK


def _say_controlnets(rows: list[dict[str, Any]], dirs: list[Path]) -> None:
    _say(f"ControlNets ({len(rows)}; inpaint/img2img --control TYPE:IMAGE --control-model NAME), looked in "
         + ", ".join(str(d) for d in dirs) + " and the Hugging Face cache:")
    for r in rows:
        _say(f"  {r['name']}  [{r['kind']}]  {r['path']}")
        if not r["usable"]:
            _say(f"      skipped: {r['note']}")


def _restoration_rows() -> list[dict[str, Any]]:
    """Restoration model files (`app.inference.restoration.files`, LaMa, upscalers, …) with what
    spandrel detects in each; torch is imported only when there is a file to inspect."""
    from app.core.errors import UserError
    from app.service import restoration_files as files

    rows = []
    for found in files.discover():
        row: dict[str, Any] = {"name": found.name, "path": str(found.path), "folder_purpose": found.folder_purpose}
        try:
            from app.service import restoration_loader as loader

            summary = loader.detect(found.path)
        except UserError as exc:
            row.update(usable=False, note=str(exc))
        else:
            row.update(usable=True, architecture=summary.architecture, purpose=summary.purpose, scale=summary.scale)
            if summary.purpose == files.INPAINT:
                row["ref"] = f"lama:{found.path}"  # what inpaint --model takes
        rows.append(row)
    return rows


def _say(line: str) -> None:
    """print() for text from the file system: control characters escaped (`app.cli.terminal`)."""
    print(safe(line))


def _model_row(info: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in ("name", "ref", "kind", "path", "inpainting", "family", "note"):
        value = getattr(info, key, None)
        row[key] = str(value) if isinstance(value, os.PathLike) else value
    row["usable"] = bool(getattr(info, "usable", True))
    return row


def _describe(row: dict[str, Any]) -> str:
    kinds = {"classical": "built in", "diffusers": "diffusers folder", "single_file": "single file", "hf_cache": "Hugging Face cache"}
    families = {"sd1": "SD 1.x", "classical": "classical", "sd2": "SD 2.x", "sdxl": "SDXL", "lora": "LoRA",
                "pix2pix": "InstructPix2Pix", "other": "not Stable Diffusion 1.x", "unknown": "unreadable"}
    if not row["usable"]:  # what it would be used as is meaningless: it does not load
        return ", ".join([kinds.get(row["kind"], row["kind"]), families.get(row["family"], row["family"] or "?")])
    if row["inpainting"] is None:
        use = "inpainting unknown until loaded"
    elif is_prompt_free(row["ref"]):
        use = "inpainting"
    else:
        use = "inpainting model (9-channel UNet)" if row["inpainting"] else "base model (img2img; inpaints by latent blending)"
    return ", ".join([kinds.get(row["kind"], row["kind"]), families.get(row["family"], row["family"] or "?"), use])


def _quote(text: str) -> str:
    return f"'{text}'" if any(c.isspace() for c in text) else text
