"""``inpaint-studio info FILE… [--json]``: what generation metadata each image holds.

For each file: the format recognised, every parameter read (under A1111's names), the model's
name and hash, what recall would set, and whether it can be re-run here — and if not, what is
missing (the model, a choice among several samplers, parameters at all). It uses the reader the
window's recall uses (`app.core.sdmeta`), so both always agree. Offline; imports no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli.terminal import safe
from app.core.schedulers import PAIRS
from app.core.sdmeta import MetadataReport, read_metadata

EXIT_OK = 0
EXIT_FAILED = 1  # as app.cli.main: some file could not be read


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``info`` command on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "info",
        help="show the generation parameters stored in images (any SD tool's format)",
        description="Show the generation metadata of each FILE: the tool that wrote it (A1111, Forge, SD.Next, "
        "ComfyUI, InvokeAI, NovelAI, Fooocus, SwarmUI, Civitai, Easy Diffusion, Hugging Face Spaces, Inpaint "
        "Studio), every parameter read, the model, and whether it can be re-run here and what is missing.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files (PNG, JPEG, WebP, …)")
    parser.add_argument("--sampler", metavar="NODE", help="ComfyUI graphs with several samplers: the sampler node id to read")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file (a JSON list)")
    parser.set_defaults(func=run_info)
    return parser


def run_info(ns: argparse.Namespace) -> int:
    models = _local_models()
    rows = [_describe_file(path, ns.sampler, models) for path in ns.files]
    if ns.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    else:
        print("\n\n".join(_text(row) for row in rows))
    return EXIT_FAILED if any(row["format"] == "none" and row["problems"][0].startswith("cannot read") for row in rows) else EXIT_OK


def _describe_file(path: str, sampler: str | None, models: dict[str, str]) -> dict[str, Any]:
    """One file's row, whatever its content: a reader failing on one hostile file is that file's
    problem, never the end of the listing (the files before and after are still reported)."""
    try:
        return describe(path, read_metadata(path, sampler), models)
    except Exception as exc:  # noqa: BLE001 - the last net; readers are meant never to raise
        report = MetadataReport("none", None, {}, {}, problems=(f"cannot read {path}: {type(exc).__name__}: {exc}"[:300],))
        return describe(path, report, models)


def describe(path: str, report: MetadataReport, models: dict[str, str]) -> dict[str, Any]:
    """One file's report as plain data (what ``--json`` prints)."""
    missing = list(report.problems)
    model_ref = None
    if report.params is not None and report.model_name:
        model_ref = _match_model(report.model_name, models)
        if model_ref is None:
            missing.append(f"model {report.model_name!r} is not among the local models (see 'inpaint-studio models')")
    elif report.params is not None and not report.model_name:
        missing.append("the file does not name its model")
    recalled = {}
    if report.params is not None:
        recalled = {name: getattr(report.params, name) for name in sorted(report.fields_set)}
        if recalled.get("scheduler") in PAIRS:  # shown as A1111 shows it: the sampler, then its schedule type
            recalled["sampler"], recalled["schedule_type"] = PAIRS[recalled["scheduler"]]
    return {
        "file": str(path),
        "format": report.format,
        "parameters": dict(report.fields),
        "model": {"name": report.model_name, "hash": report.model_hash, "local": model_ref},
        "recall": recalled,
        "can_rerun": report.params is not None and not missing,
        "missing": missing,
        "notes": list(report.notes),
        "problems": list(report.problems),
        "samplers": [{"node": c.node_id, "label": c.label} for c in report.choices],
        "metadata_keys": sorted(report.raw),
    }


def _text(row: dict[str, Any]) -> str:
    lines = [f"{row['file']}: {row['format']}"]
    for key, value in row["parameters"].items():
        if key not in ("Size-1", "Size-2") and not isinstance(value, (dict, list)):
            lines.append(f"  {key}: {_one_line(value)}")
    model = row["model"]
    if model["name"] or model["hash"]:
        local = f" → {model['local']}" if model["local"] else ""
        lines.append(f"  model: {model['name'] or '?'} (hash {model['hash'] or 'not given'}){local}")
    for sampler in row["samplers"]:
        lines.append(f"  sampler to choose (--sampler {sampler['node']}): {sampler['label']}")
    if row["recall"]:
        shown = {k: v for k, v in row["recall"].items() if k != "scheduler" or "sampler" not in row["recall"]}
        lines.append("  recall sets: " + ", ".join(f"{k}={_one_line(v)[:40]}" for k, v in shown.items()))
    lines += [f"  note: {n}" for n in row["notes"]]
    if row["can_rerun"]:
        lines.append("  can be re-run here: yes")
    else:
        lines.append("  can be re-run here: no — " + "; ".join(row["missing"] or ["no parameters"]))
    if not row["parameters"] and row["metadata_keys"]:
        lines.append("  metadata keys: " + ", ".join(row["metadata_keys"]))
    return "\n".join(safe(line) for line in lines)


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 200 else text[:199] + "…"


def _local_models() -> dict[str, str]:
    """Usable local models by lower-case name and file stem → their --model reference."""
    from app.service import catalog  # offline discovery, no torch

    found: dict[str, str] = {}
    for info in catalog.discover_models():
        if info.usable:
            for key in (info.name, Path(str(info.ref)).stem, Path(str(info.ref)).name):
                found.setdefault(key.lower(), info.ref)
    return found


def _match_model(name: str, models: dict[str, str]) -> str | None:
    base = Path(name.replace("\\", "/")).name
    for key in (name, base, Path(base).stem):
        if key.lower() in models:
            return models[key.lower()]
    return None
