"""Test set-up shared by the whole suite."""

import os
import tempfile

# Autosave, recovery and settings must never touch the user's real data folder.
os.environ.setdefault("INPAINT_STUDIO_DATA", tempfile.mkdtemp(prefix="inpaint-studio-test-"))
# Qt must never need a display in the suite; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# -- tiny diffusion models (tests/tinymodels.py) ------------------------------------------------
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so tests can `import tinymodels`


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """One folder holding the tiny diffusers models (a models directory for discovery tests)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_inpaint_model(tiny_models_dir) -> Path:
    """A tiny random-weight SD 1.x inpainting model (9-channel UNet) as a diffusers folder."""
    from tinymodels import build_tiny_sd

    return build_tiny_sd(tiny_models_dir / "tiny-sd-inpainting", inpainting=True)


@pytest.fixture(scope="session")
def tiny_base_model(tiny_models_dir) -> Path:
    """A tiny random-weight SD 1.x base model (4-channel UNet) as a diffusers folder."""
    from tinymodels import build_tiny_sd

    return build_tiny_sd(tiny_models_dir / "tiny-sd-base", inpainting=False)


@pytest.fixture(scope="session")
def tiny_single_file(tmp_path_factory) -> Path:
    """A tiny SD 1.x inpainting model as ONE original-layout (LDM keys) .safetensors checkpoint,
    the format shared on the web. Its text encoder has CLIP's real 49408-token vocabulary so the
    tokenizer shipped under resources/ fits it; the diffusers folder it was exported from lies
    next to it as ``<file>.parent / "diffusers"`` for exact comparisons."""
    from tinymodels import build_tiny_sd, export_ldm_checkpoint

    base = tmp_path_factory.mktemp("single_file")
    folder = build_tiny_sd(base / "diffusers", inpainting=True, clip_vocab=True)
    return export_ldm_checkpoint(folder, base / "tiny-sd-inpainting.safetensors")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_teardown(item):
    """Windows a test leaves open close without asking about unsaved work, and dialogs it left
    open close too: pytest-qt closes registered widgets before fixtures tear down, and a question
    left open would stay modal and swallow the next tests' input."""
    if "PySide6.QtWidgets" in sys.modules:
        from PySide6.QtWidgets import QApplication

        if QApplication.instance() is not None:
            from app.widgets.main_window import MainWindow

            for widget in QApplication.topLevelWidgets():
                if isinstance(widget, MainWindow) and widget.isVisible():
                    widget.force_close()
            for _ in range(10):  # bounded: nested dialogs close one by one
                modal = QApplication.activeModalWidget()
                if modal is None:
                    break
                modal.close()
    yield
