"""``inpaint-studio --self-test [OUT.png]``: does this installation work?

Run after installing (and by the packaging build on the fresh bundle) it exercises what a user
needs on day one, without a display and without a diffusion model: Qt starts and the main
window opens (offscreen unless ``QT_QPA_PLATFORM`` is set, i.e. a display is forced) with the
bundled sample image, the classical backend inpaints that sample under a built-in mask, the
PNG is written atomically and read back — pixels outside the mask bit-identical, both
metadata chunks recalled. It prints one line and returns 0, or one line saying which step
failed and returns 1. A watchdog ends a hung run (a modal dialog nobody can click) after
`TIMEOUT_S`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import app

TIMEOUT_S = 120.0
SAMPLE_NAME = "sample.png"


class SelfTestError(Exception):
    """A step failed; the message names the step and the reason."""


def sample_path() -> Path:
    """The bundled sample photo (in a checkout: resources/; in a bundle: next to the code)."""
    from app.storage.paths import resources_dir

    return resources_dir() / SAMPLE_NAME


def builtin_mask(height: int, width: int):
    """The self-test's mask: an ellipse (an object to remove) and a thin diagonal scratch, the two
    shapes users inpaint most; far from the borders so "outside" is a large, meaningful area."""
    import cv2
    import numpy as np

    mask = np.zeros((height, width), np.uint8)
    centre = (int(width * 0.62), int(height * 0.45))
    axes = (max(2, width // 10), max(2, height // 8))
    cv2.ellipse(mask, centre, axes, 20, 0, 360, 255, thickness=-1)
    cv2.line(mask, (width // 8, height // 5), (width // 3, height * 4 // 5), 255, thickness=max(2, width // 100))
    return mask


def run(output: str | os.PathLike[str] | None = None) -> int:
    """Run every step; print one line; 0 if all passed, 1 otherwise."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    watchdog = threading.Timer(TIMEOUT_S, _timed_out)
    watchdog.daemon = True
    watchdog.start()
    temp_dir = None
    try:
        if output:
            out_path = Path(output)
            if out_path.suffix.lower() != ".png":
                raise SelfTestError(f"output: {out_path} must end in .png")
        else:
            temp_dir = tempfile.mkdtemp(prefix="inpaint-studio-selftest-")
            out_path = Path(temp_dir) / "selftest.png"
        report = _run_steps(out_path)
    except SelfTestError as exc:
        _print_failure(str(exc))
        return 1
    except Exception as exc:  # any surprise is a failed self-test, reported in one line
        _print_failure(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}")
        return 1
    finally:
        watchdog.cancel()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
    where = f"wrote {out_path}" if output else "wrote and re-read the PNG in a temporary folder (removed)"
    print(f"Inpaint Studio {app.__version__} self-test OK: {report}; {where}", flush=True)
    return 0


def _run_steps(out_path: Path) -> str:
    sample = sample_path()
    if not sample.is_file():
        raise SelfTestError(f"sample image: {sample} is missing from the installation")

    with tempfile.TemporaryDirectory(prefix="inpaint-studio-selftest-settings-") as settings_dir:
        window_report = _open_window(sample, Path(settings_dir) / "settings.ini")
    loaded, record, elapsed = _inpaint_sample(sample)
    recalled = _check_saved_png(out_path, record)
    from app.core import versions

    qt = versions.qt_version() or versions.package_version("PySide6") or "?"
    return (
        f"{window_report}; classical inpaint of {sample.name} {loaded.width}×{loaded.height} in {elapsed:.2f} s, "
        f"0 pixels changed outside the mask; PNG metadata recalled ({recalled.model}); "
        f"Python {sys.version.split()[0]}, Qt {qt}, {_torch_text()}"
    )


def _inpaint_sample(sample: Path):
    """(loaded sample, record, seconds) of a classical inpaint through the generation service,
    checked: same shape and depth, nothing changed outside the feathered mask, something inside."""
    import numpy as np

    from app.core import maskops
    from app.core.imageio import ImageLoadError, load_image
    from app.core.params import GenerationParams
    from app.service import GenerationRequest, GenerationService

    try:
        loaded = load_image(sample)
    except ImageLoadError as exc:
        raise SelfTestError(f"loading the sample: {exc}") from None
    original = loaded.pixels
    mask = builtin_mask(loaded.height, loaded.width)
    params = GenerationParams(mode="inpaint", model="builtin:telea")
    t0 = time.perf_counter()
    record = GenerationService().run(GenerationRequest(params, original, mask))
    elapsed = time.perf_counter() - t0
    out = record.candidates[0]
    if out.shape != original.shape or out.dtype != original.dtype:
        raise SelfTestError(f"inpaint: result is {out.shape} {out.dtype}, expected {original.shape} {original.dtype}")
    outside = maskops.feather_full(maskops.grow(mask, params.mask_grow), params.mask_blur) == 0
    changed_outside = int(np.count_nonzero(np.any(out != original, axis=-1)[outside]))
    if changed_outside:
        raise SelfTestError(f"inpaint: {changed_outside} pixels outside the mask changed")
    if not np.any(out[mask > 0] != original[mask > 0]):
        raise SelfTestError("inpaint: nothing changed inside the mask")
    return loaded, record, elapsed


def _check_saved_png(out_path: Path, record):
    """Save the result as the CLI and the window do and read it back: the same pixels, the
    A1111 chunk, and the parameters recalled equal to the candidate's. Returns those parameters."""
    import numpy as np

    from app.core.imageio import load_image
    from app.core.metadata import A1111_KEY, read_params
    from app.service import candidate_params, save_candidate

    out = record.candidates[0]
    try:
        save_candidate(out_path, record, 0)
    except (OSError, ValueError) as exc:
        raise SelfTestError(f"writing {out_path}: {exc}") from None
    back = load_image(out_path)
    if not np.array_equal(back.pixels, out):
        raise SelfTestError(f"{out_path.name}: pixels read back differ from those written")
    if not str(back.info.get(A1111_KEY, "")).strip():
        raise SelfTestError(f"{out_path.name}: the AUTOMATIC1111 'parameters' chunk is missing")
    recalled = read_params(out_path)
    if recalled != candidate_params(record, 0):
        raise SelfTestError(f"{out_path.name}: generation parameters could not be recalled from the PNG ({recalled!r})")
    return recalled


def _torch_text() -> str:
    """What the report says of torch: the diffusion stack checked, or why it was not loaded."""
    from app.core import versions

    torch_v = versions.package_version("torch")
    if torch_v and _check_diffusion_wanted():
        return _check_diffusion_stack()
    return f"torch {torch_v} (not loaded)" if torch_v else "no torch (classical-only build)"


def _open_window(sample: Path, settings_file: Path) -> str:
    """Open the editor's main window with the sample, let it paint, check it shows, close it.

    The window gets a throw-away settings file, so a self-test never changes the user's
    preferences or recent files. Qt's own warnings (the offscreen plugin's "does not support
    propagateSizeHints()") are collected, not printed: the report stays one line.
    """
    try:
        from PySide6.QtCore import qInstallMessageHandler
    except ImportError as exc:
        raise SelfTestError(f"Qt: PySide6 cannot be imported ({exc})") from None
    qt_messages: list[str] = []
    previous = qInstallMessageHandler(lambda mode, context, message: qt_messages.append(message))
    try:
        from app.widgets.application import create_app
        from app.editor.settings import Settings
        from app.widgets.main_window import MainWindow

        qapp = create_app([sys.argv[0] if sys.argv else "inpaint-studio"])
        platform_name = qapp.platformName()
        window = MainWindow(Settings(settings_file))
        try:
            window.show()
            if not window.files.open_path(str(sample)):
                raise SelfTestError(f"window: MainWindow could not open {sample.name}")
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not window.isVisible():
                qapp.processEvents()
            qapp.processEvents()
            if not window.isVisible():
                raise SelfTestError(f"window: MainWindow did not become visible on the '{platform_name}' platform")
            shot = window.grab()
            if shot.isNull() or shot.width() < 50 or shot.height() < 50:
                raise SelfTestError(f"window: MainWindow could not be rendered ({shot.width()}×{shot.height()})")
            size = f"{window.width()}×{window.height()}"
        finally:
            window.shutdown()
            window.close()
            window.deleteLater()
            qapp.processEvents()
    finally:
        qInstallMessageHandler(previous)
    return f"MainWindow opened {sample.name} ({platform_name}, {size})"


def _check_diffusion_wanted() -> bool:
    """In a bundle the diffusion stack is what packaging breaks (a module loaded through a lazy
    import left out, metadata a dependency check reads): check it there. From a checkout the test
    suite covers it, and importing torch would only slow the self-test down; set
    INPAINT_STUDIO_SELFTEST_DIFFUSION=1 (or 0) to force the choice."""
    forced = os.environ.get("INPAINT_STUDIO_SELFTEST_DIFFUSION")
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "no")
    return bool(getattr(sys, "frozen", False))


def _check_diffusion_stack() -> str:
    """Import what the first generation imports and pick the device, as the worker would."""
    from app.service import diffusion_loader

    try:
        return diffusion_loader.check_stack()
    except Exception as exc:  # ImportError, a missing metadata record, a broken CUDA library
        raise SelfTestError(f"diffusion stack: {type(exc).__name__}: {' '.join(str(exc).split())}") from None


def _print_failure(message: str) -> None:
    sys.stderr.write(f"Inpaint Studio {app.__version__} self-test FAILED: {message}\n")
    sys.stderr.flush()


def _timed_out() -> None:
    _print_failure(f"timed out after {TIMEOUT_S:.0f} s (a window or dialog did not close?)")
    os._exit(1)
