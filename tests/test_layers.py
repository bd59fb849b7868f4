"""The layer rules of DESIGN.md, checked in fresh interpreters so nothing else has imported
the modules first: inference never loads Qt, widgets never load torch."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_inference_loads_no_qt(tiny_inpaint_model):
    code = """
import json, sys
import numpy as np
import app.inference, app.inference.diffusers.loader, app.inference.diffusers.backend, app.inference.engine
from app.inference.engine import BackendRequest
from app.inference.registry import LoadOptions, load_backend
from app.core.params import GenerationParams
backend = load_backend(sys.argv[1], LoadOptions(device="cpu"))
mask = np.zeros((64, 64), np.uint8); mask[16:48, 16:48] = 255
req = BackendRequest(np.zeros((64, 64, 3), np.uint8), mask, GenerationParams(prompt="x", steps=1, guidance=1.0, seed=1), (1,))
out = backend.generate(req, lambda *a: None, lambda: False)
print(json.dumps({"qt": sorted(m for m in sys.modules if m.startswith("PySide6")),
                  "torch": "torch" in sys.modules, "shape": list(out[0].shape)}))
"""
    result = _python(code, str(tiny_inpaint_model))
    assert result == {"qt": [], "torch": True, "shape": [64, 64, 3]}


def test_widgets_load_no_torch():
    code = """
import importlib, json, pkgutil, sys
import app.widgets
names = ["app.widgets"]
for info in pkgutil.walk_packages(app.widgets.__path__, "app.widgets."):
    importlib.import_module(info.name)
    names.append(info.name)
print(json.dumps({"modules": names,
                  "heavy": sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)}))
"""
    result = _python(code)
    assert result["heavy"] == []
    assert "app.widgets" in result["modules"]


def test_model_listing_and_scheduler_table_load_no_torch():
    """The editor lists models and schedulers at start-up: that must not pay for torch."""
    code = """
import json, sys
from app.inference.diffusers.catalog import discover_models
from app.core.schedulers import SCHEDULER_NAMES
refs = [m.ref for m in discover_models()]
print(json.dumps({"refs": refs[:2], "n": len(SCHEDULER_NAMES),
                  "heavy": sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)}))
"""
    result = _python(code)
    assert result == {"refs": ["builtin:telea", "builtin:ns"], "n": 157, "heavy": []}  # 13 samplers (TCD too) × 12 schedule types + PLMS


def test_refusing_a_model_imports_no_torch(tmp_path):
    """Refusals (pickle, wrong family, missing files) are decided from file headers: instant,
    and nothing from the file runs."""
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 not loaded")
    missing = tmp_path / "half-model"
    missing.mkdir()
    (missing / "model_index.json").write_text("{}")
    code = """
import json, sys
from app.inference.errors import ModelLoadError
from app.inference.registry import load_backend
errors = []
for ref in sys.argv[1:]:
    try:
        load_backend(ref)
    except ModelLoadError as exc:
        errors.append(type(exc).__name__)
print(json.dumps({"errors": errors, "torch": "torch" in sys.modules}))
"""
    result = _python(code, str(ckpt), str(missing))
    assert result["torch"] is False
    assert result["errors"][0] == "PickleRefusedError" and len(result["errors"]) == 2
