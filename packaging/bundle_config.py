"""What goes into a PyInstaller bundle, per variant, as plain data the spec and the tests share.

Variants (see packaging/README.md):

- ``classical``: no torch/diffusers. The editor and the OpenCV inpainting only; ~10× smaller.
- ``cpu``: torch as installed in the build environment when it is a CPU build (``2.13.0+cpu``).
- ``cuda``: the same recipe built in an environment holding a CUDA build of torch (NVIDIA
  workstations); the torch hook then bundles the CUDA libraries it links.
- ``mps``: macOS; the standard macOS torch wheel (Metal). Same recipe as ``cpu``.

The variant is chosen with ``INPAINT_STUDIO_VARIANT`` (the build scripts set it) or, by default,
from what is installed: no torch → classical; torch with CUDA → cuda; else cpu (mps on macOS).
Nothing here imports PyInstaller or torch, so the test suite can check it in milliseconds.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_NAME = "Inpaint Studio"
BUNDLE_DIR = "InpaintStudio"  # dist/InpaintStudio/
CONSOLE_EXE = "inpaint-studio"  # the CLI and, on Linux/macOS, the editor too
WINDOWED_EXE = "InpaintStudio"  # Windows only: the editor without a console window
BUNDLE_ID = "org.inpaintstudio.InpaintStudio"
VARIANTS = ("classical", "cpu", "cuda", "mps")
DIFFUSION_VARIANTS = ("cpu", "cuda", "mps")

#: Distributions every variant ships, by distribution name (for metadata, licences, notices).
CORE_DISTS = (
    "numpy",
    "pillow",
    "opencv-python-headless",
    "PySide6-Essentials",
    "shiboken6",
    "platformdirs",
)
#: Added by the diffusion variants. The torch hook adds torch's own dependencies' code; these
#: are the ones whose metadata or licence we must carry explicitly.
DIFFUSION_DISTS = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "huggingface_hub",
    "tokenizers",
    "scipy",
    "sympy",
    "mpmath",
    "networkx",
    "filelock",
    "fsspec",
    "jinja2",
    "regex",
    "pyyaml",
    "requests",
    "tqdm",
    "packaging",
    "typing_extensions",
)

#: Never useful in the app, sometimes pulled in by optional imports of big packages.
COMMON_EXCLUDES = (
    "tkinter",
    "_tkinter",
    "matplotlib",
    "IPython",
    "jupyter",
    "notebook",
    "pytest",
    "_pytest",
    "pytestqt",
    "hypothesis",
    "skimage",
    "pandas",
    "sklearn",
    "tensorboard",
    "torch.utils.tensorboard",
    "torchvision",
    "torchaudio",
    "tensorflow",
    "jax",
    "flax",
    "onnx",
    "onnxruntime",
    "triton",  # torch.compile's GPU compiler: the app never compiles; hundreds of MB in CUDA builds
    "boto3",
    "botocore",
    "awscli",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.Qt3DCore",
    "PySide6.QtQuick",
    "PySide6.QtQml",
    "PySide6.QtMultimedia",
    "PySide6.QtCharts",
    "PySide6.QtPdf",
    "PySide6.QtTest",
    "PySide6.QtNetwork",  # the app's HTTP goes through httpx; also drops Qt's TLS and network-information plugins
    "PyQt5",
    "PyQt6",
)
#: Ray Serve runs ``serve --ray`` on clusters (a pip install with the ``cluster`` extra or the
#: container image, docs/DEPLOY.md), never from a desktop bundle, whose ``serve --ray`` says so in
#: one line; the editor reaches a Ray-backed server over HTTP (httpx). What only Ray imports (grpc,
#: aiohttp, msgpack, pyarrow, ...) goes with it. The other four are uvicorn's optional speed-ups,
#: installed here only because ray[serve] asks for ``uvicorn[standard]``; without them uvicorn
#: serves with asyncio and h11, as after ``pip install ".[serve]"`` (the server has no WebSocket
#: route), and websockets' router was the only importer of werkzeug and cryptography.
CLUSTER_EXCLUDES = (
    "ray",
    "uvloop",
    "httptools",
    "websockets",
    "watchfiles",
)
#: The classical variant drops the whole diffusion stack.
CLASSICAL_EXCLUDES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "huggingface_hub",
    "tokenizers",
    "scipy",
    "sympy",
    "networkx",
    "jinja2",
    "spandrel",  # restoration models (the `restore` extra) run on torch
    "einops",
    # only numpy.show_config() and uvicorn's YAML log-config files import it; transformers and
    # huggingface_hub need it, so the diffusion variants keep it
    "yaml",
)
#: Loaded through importlib strings (lazy modules) that static analysis cannot follow.
DIFFUSION_HIDDEN_PACKAGES = ("diffusers", "transformers.models.clip")
#: Qt translations other than Qt's own base strings are not used (the UI is English).
KEEP_TRANSLATIONS = re.compile(r"qtbase_[a-z_]+\.qm$")


@dataclass(frozen=True)
class Variant:
    name: str
    diffusion: bool
    excludes: tuple[str, ...]
    dists: tuple[str, ...]


def installed_torch() -> str | None:
    """Version of the torch in this environment, without importing it."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def torch_has_cuda() -> bool:
    """Whether the installed torch is a CUDA build, from its metadata (no import)."""
    version = installed_torch()
    if version is None or "+cpu" in version:
        return False
    if re.search(r"\+cu\d+", version):
        return True
    try:  # PyPI's Linux wheels have no local tag but depend on nvidia-* libraries
        requires = metadata.requires("torch") or []
    except metadata.PackageNotFoundError:
        return False
    return any(r.lower().startswith("nvidia-") for r in requires) and sys.platform.startswith("linux")


def default_variant() -> str:
    if installed_torch() is None:
        return "classical"
    if sys.platform == "darwin":
        return "mps"
    return "cuda" if torch_has_cuda() else "cpu"


def variant(name: str | None = None) -> Variant:
    """The named variant (or ``INPAINT_STUDIO_VARIANT``, or the default for this environment)."""
    name = (name or os.environ.get("INPAINT_STUDIO_VARIANT") or default_variant()).strip().lower()
    if name not in VARIANTS:
        raise ValueError(f"unknown bundle variant {name!r}: use one of {', '.join(VARIANTS)}")
    if name == "classical":
        return Variant(name, False, COMMON_EXCLUDES + CLUSTER_EXCLUDES + CLASSICAL_EXCLUDES, CORE_DISTS)
    return Variant(name, True, COMMON_EXCLUDES + CLUSTER_EXCLUDES, CORE_DISTS + DIFFUSION_DISTS)


def check_environment(v: Variant) -> list[str]:
    """Problems that would make the bundle wrong for its variant (the build stops on them)."""
    problems = []
    torch_version = installed_torch()
    if v.diffusion and torch_version is None:
        problems.append(f"variant {v.name} needs torch installed (pip install -c constraints.txt -e '.[diffusion]')")
    if v.name == "cuda" and torch_version and not torch_has_cuda():
        problems.append(f"variant cuda needs a CUDA build of torch, found {torch_version}")
    if v.name == "cpu" and torch_version and torch_has_cuda():
        problems.append(f"variant cpu would bundle the CUDA build {torch_version}; install the CPU wheel")
    return problems


def resource_datas() -> list[tuple[str, str]]:
    """(source, destination folder) pairs: resources, licence, notices."""
    return [
        (str(ROOT / "resources"), "resources"),
        (str(ROOT / "LICENSE"), "."),
        (str(ROOT / "THIRD_PARTY_NOTICES.md"), "."),
        # Qt and PySide6 are used under the LGPL-3.0 (which incorporates the GPL-3.0 text); their
        # wheels carry no licence file, so the texts travel from packaging/licenses/.
        (str(ROOT / "packaging" / "licenses" / "LGPL-3.0.txt"), "licenses/Qt-PySide6"),
        (str(ROOT / "packaging" / "licenses" / "GPL-3.0.txt"), "licenses/Qt-PySide6"),
    ]


def license_datas(dists: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each bundled distribution's own licence files → ``licenses/<dist>/`` in the bundle."""
    out = []
    for dist in dists:
        try:
            d = metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            continue
        for f in d.files or []:
            name = f.name.upper()
            if not (name.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")) or "/licenses/" in str(f).lower()):
                continue
            path = Path(str(d.locate_file(f)))
            parts = Path(str(f)).parts
            if not path.is_file() or not parts[0].endswith(".dist-info"):
                continue
            # keep the layout inside dist-info: numpy ships a dozen files all called LICENSE.txt
            inner = [p for p in parts[1:-1] if p != "licenses"]
            out.append((str(path), "/".join(["licenses", d.metadata["Name"], *inner])))
    return out


#: Metadata read at run time by diffusers' and transformers' dependency checks
#: (``dependency_versions_check.pkgs_to_check_at_runtime``): without it ``import diffusers``
#: fails in the bundle with "The 'requests' distribution was not found".
RUNTIME_CHECKED_DISTS = (
    "requests", "filelock", "numpy", "tqdm", "regex", "packaging", "tokenizers", "huggingface-hub",
    "safetensors", "accelerate", "pyyaml",
)


def version_metadata_dists(v: Variant) -> tuple[str, ...]:
    """Distributions whose metadata is read at run time: by `app.core.versions`, and by the
    dependency checks of diffusers/transformers in the diffusion variants."""
    base = ("numpy", "pillow", "opencv-python-headless", "PySide6-Essentials")
    if not v.diffusion:
        return base
    extra = ("torch", "diffusers", "transformers") + RUNTIME_CHECKED_DISTS
    return base + tuple(d for d in extra if d not in base)


def keep_data_file(dest: str) -> bool:
    """Filter for Analysis.datas: drop Qt translations we do not use."""
    normalized = dest.replace("\\", "/")
    if "/translations/" in normalized and normalized.endswith(".qm"):
        return bool(KEEP_TRANSLATIONS.search(normalized))
    return True


def app_version() -> str:
    """``app.__version__`` read from the source, so the spec need not import the app."""
    text = (ROOT / "app" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    if not match:
        raise RuntimeError("app/__init__.py has no __version__")
    return match.group(1)


def windows_version_info(version: str) -> str:
    """The VSVersionInfo text PyInstaller embeds in the Windows executables."""
    nums = [int(x) for x in re.findall(r"\d+", version)[:4]]
    nums += [0] * (4 - len(nums))
    t = tuple(nums)
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={t}, prodvers={t}, mask=0x3f, flags=0x0, OS=0x40004, fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'Inpaint Studio contributors'),
      StringStruct('FileDescription', '{APP_NAME}'),
      StringStruct('FileVersion', '{version}'),
      StringStruct('InternalName', '{CONSOLE_EXE}'),
      StringStruct('LegalCopyright', 'Apache-2.0; see THIRD_PARTY_NOTICES.md'),
      StringStruct('OriginalFilename', '{WINDOWED_EXE}.exe'),
      StringStruct('ProductName', '{APP_NAME}'),
      StringStruct('ProductVersion', '{version}')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def mac_info_plist(version: str) -> dict:
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "NSHighResolutionCapable": True,
        "LSMinimumSystemVersion": "12.0",
        "NSHumanReadableCopyright": "Apache-2.0; third-party notices inside the bundle",
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": "Image",
                "CFBundleTypeRole": "Editor",
                "LSItemContentTypes": ["public.png", "public.jpeg", "public.tiff", "org.webmproject.webp"],
            }
        ],
    }
