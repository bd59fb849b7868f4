"""spandrel without a working torchvision (docs/ARCHITECTURE.md, "Restoration models").

spandrel imports torchvision in two architectures only. Where torchvision is missing or built
for another torch (PyPI's wheel beside our CPU torch: "operator torchvision::nms does not
exist"), the app imports spandrel with a stand-in for those names that lives in sys.modules
only during that import; where torchvision works, spandrel gets the real one. Each case runs in
a fresh interpreter with a torchvision package made for it on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
import torch
from app.inference.restoration.spandrel_import import spandrel
spandrel()
from spandrel.architectures import RestoreFormer
from spandrel.architectures.LaMa import LaMa
x = torch.tensor([[[0.25]], [[0.5]], [[1.0]]])
print(json.dumps({
    "left_in_sys_modules": sorted(m for m in sys.modules if m.split(".")[0] == "torchvision"),
    "normalize_from": RestoreFormer.tv_normalize.__module__,
    "normalized": RestoreFormer.tv_normalize(x, [0.5] * 3, [0.5] * 3).flatten().tolist(),
}))
"""


def _probe(tmp_path: Path, torchvision_init: str, functional: str = "") -> dict:
    package = tmp_path / "torchvision"
    (package / "transforms").mkdir(parents=True)
    (package / "__init__.py").write_text(torchvision_init)
    (package / "transforms" / "__init__.py").write_text("")
    (package / "transforms" / "functional.py").write_text(functional)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_broken_torchvision_is_replaced_during_the_import_only(tmp_path):
    result = _probe(tmp_path, 'raise RuntimeError("operator torchvision::nms does not exist")')
    assert result["left_in_sys_modules"] == []  # nothing else can find the stand-in afterwards
    assert result["normalize_from"] == "app.inference.restoration.spandrel_import"
    assert result["normalized"] == [-0.5, 0.0, 1.0]  # torchvision's (x - mean) / std


@pytest.mark.slow
def test_a_working_torchvision_is_used_as_it_is(tmp_path):
    functional = ("from enum import Enum\nclass InterpolationMode(Enum):\n    BILINEAR = 'bilinear'\n"
                  "def rotate(*a, **k):\n    raise AssertionError\n"
                  "def normalize(t, mean, std, inplace=False):\n    return t * 0 + 7\n")
    result = _probe(tmp_path, "", functional)
    assert result["normalize_from"] == "torchvision.transforms.functional"
    assert result["normalized"] == [7.0, 7.0, 7.0]


def test_finding_restoration_models_and_lama_capabilities_load_no_torch(tmp_path):
    """The window lists models at start-up and the service checks a request before loading:
    neither may pay for torch, even with restoration files present."""
    for folder, name in (("LaMa", "big-lama.safetensors"), ("ESRGAN", "x4.pth")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(b"not read")
    code = ("import json, sys\nfrom app.inference import registry\nfrom app.inference.restoration import files\n"
            "names = [f.path.name for f in files.discover()]\ncaps = registry.capabilities('lama')\n"
            "print(json.dumps({'names': names, 'kind': caps.kind, 'torch': 'torch' in sys.modules}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INPAINT_STUDIO_MODELS": str(tmp_path)}
    env.pop("INPAINT_STUDIO_A1111", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"names": ["x4.pth", "big-lama.safetensors"], "kind": "restoration", "torch": False}
