"""A tiny app session for the crash tests, run in a subprocess and killed with SIGKILL.

``work OUT``:    open a real photo through app.core.imageio, paint a mask with brush strokes, run the
                 real Engine (classical backend), record the generation and apply the candidate,
                 wait for the autosave, paint more mask, wait for the timed autosave, write what
                 the user sees to ``OUT/expected.npz`` + ``OUT/expected.json``, print READY and
                 keep running until killed.
``hammer OUT``:  apply result after result, autosaving each, forever (killed at a random moment,
                 possibly in the middle of a write).
``recover OUT``: start like the app does, take the pending recovery, restore it into a fresh
                 Document and write what came back to ``OUT/restored.npz`` + ``.json``.

With ``--window`` the session is the real MainWindow: the image is opened with ``open_path``, the
generation runs through the window's worker thread and the candidate is applied with
``apply_candidate``; the recovery hook is the window's own ``window.recovery`` when its __init__
installs it, else ``app.widgets.recovery_dialog.install(window)``. Without it, a bare Document
plus RecoveryController (the hammer test, where start-up time matters).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.editor.document import Document  # noqa: E402
from app.core.records import GenerationRecord  # noqa: E402
from app.core.imageio import load_image, save_image  # noqa: E402
from app.inference.classical import ClassicalBackend  # noqa: E402
from app.inference.engine import Engine, Job  # noqa: E402
from app.core.params import GenerationParams  # noqa: E402
from app.editor.recovery_controller import RecoveryController  # noqa: E402

PARAMS = GenerationParams(prompt="remove the scratch", negative_prompt="blur", steps=17, seed=1234, mask_blur=3)


def wait_for(signal, timeout_ms: int = 20000) -> list:
    loop = QEventLoop()
    got: list = []

    def done(*args):
        got.extend(args)
        loop.quit()

    signal.connect(done)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(done)
    if not got:
        raise SystemExit("timed out waiting for the autosave")
    return got


def session(use_window: bool, out: Path):
    """(document, controller, params setter, window or None) as the app builds them."""
    if use_window:
        from app.editor.settings import Settings
        from app.widgets.main_window import MainWindow
        from app.widgets.recovery_dialog import install

        window = MainWindow(Settings(out / "settings.ini"), discover=lambda: [])
        ctl = getattr(window, "recovery", None) or install(window, offer=False)
        return window.document, ctl, window.set_params, window
    doc = Document()
    params = {"value": GenerationParams()}
    ctl = RecoveryController(doc, lambda: params["value"], mask_interval_s=0.5).attach()
    return doc, ctl, lambda p: params.__setitem__("value", p), None


def work(out: Path, use_window: bool) -> None:
    doc, ctl, set_params, window = session(use_window, out)
    ctl.mask_interval_s = 0.5
    from skimage import data

    photo = out / "photo.png"
    save_image(photo, data.astronaut()[100:260, 150:350])
    if window is not None:
        assert window.files.open_path(photo)
    else:
        doc.set_image(load_image(photo), str(photo))
    set_params(PARAMS)
    doc.begin_stroke()
    doc.stroke_segment((40, 40), (120, 70), 6)
    doc.end_stroke()
    if window is not None:  # the real path: worker thread, candidates, Apply
        assert window.generation.generate()
        (record,) = wait_for(window.generation_finished)
        assert window.generation.apply_candidate(0)
        params = window.current_params()
    else:
        result = Engine(ClassicalBackend()).run(Job(PARAMS, doc.pixels.copy(), doc.mask.copy()))
        record = GenerationRecord(
            result.params, [c.image for c in result.candidates], [c.seed for c in result.candidates],
            list(result.regions), result.backend, result.elapsed_s, applied=0,
        )
        doc.add_generation(record)
        doc.apply_result(result.candidates[0].image)
        params = PARAMS
    wait_for(ctl.saved)  # the applied result is on disk
    doc.fill_rect((5, 100, 30, 20))  # more mask work: saved by the timer
    wait_for(ctl.saved)
    np.savez(out / "expected.npz", pixels=doc.pixels, mask=doc.mask, original=doc.original, candidate=record.candidates[0])
    (out / "expected.json").write_text(json.dumps({"params": params.to_dict(), "gen_params": record.params.to_dict(),
                                                   "applied": record.applied}))
    print("READY", flush=True)
    QApplication.instance().exec()


def undo_expand(out: Path, use_window: bool) -> None:
    """Issue 25's path in the real window: Expand canvas → Generate → Discard → Undo (the
    expansion) → a new stroke, each autosaved; a crash now must restore the undone canvas and
    the stroke, not an older expanded state."""
    from app.core.outpaint import Expansion

    doc, ctl, set_params, window = session(True, out)
    ctl.mask_interval_s = 0.5
    from skimage import data

    photo = out / "photo.png"
    save_image(photo, data.astronaut()[100:260, 150:350])
    assert window.files.open_path(photo)
    doc.expand_canvas(Expansion(0, 0, 64, 0), "stretch")
    assert window.generation.generate(GenerationParams(model="builtin:telea"))
    wait_for(window.generation_finished)
    window.generation.discard_candidates()
    window.menu_actions.undo.trigger()
    assert doc.size == (200, 160), doc.size
    wait_for(ctl.saved)
    doc.begin_stroke()
    doc.stroke_segment((20, 20), (90, 60), 5)
    doc.end_stroke()
    wait_for(ctl.saved)
    assert ctl.autosaver.last_error is None, ctl.autosaver.last_error
    np.savez(out / "expected.npz", pixels=doc.pixels, mask=doc.mask, original=doc.original, candidate=doc.generations[0].candidates[0])
    print("READY", flush=True)
    QApplication.instance().exec()


def hammer(out: Path, use_window: bool) -> None:
    doc, ctl, set_params, _keep = session(use_window, out)
    rng = np.random.default_rng(0)
    doc.set_image(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    k = 0
    while True:
        k += 1
        value = k % 250
        doc.apply_result(np.full_like(doc.pixels, value))
        doc.set_mask(np.full(doc.mask.shape, 255 if k % 2 else 0, np.uint8))
        set_params(PARAMS.replace(steps=1 + value % 150))
        ctl.autosave_now()
        QApplication.processEvents()
        if k == 2:
            ctl.autosaver.flush()
            print("READY", flush=True)


def recover(out: Path, use_window: bool) -> None:
    doc, ctl, set_params, window = session(use_window, out)
    got = {}
    ctl.restored.connect(lambda p: got.setdefault("params", p))
    pending = ctl.offer_recovery()
    (out / "pending.json").write_text(json.dumps([str(r.path) for r in pending]))
    if pending:
        ctl.restore(pending[0])
        ctl.autosaver.flush()
        np.savez(out / "restored.npz", pixels=doc.pixels, mask=doc.mask, original=doc.original,
                 candidate=doc.generations[0].candidates[0] if doc.generations else np.zeros(0))
        gens = [g.params.to_dict() for g in doc.generations]
        shown = window.current_params().to_dict() if window is not None else None  # what the panel shows now
        (out / "restored.json").write_text(json.dumps({"params": got["params"].to_dict(), "generations": gens,
                                                       "shown": shown, "applied": [g.applied for g in doc.generations]}))
    ctl.shutdown(clean=True)
    if window is not None:
        window.shutdown()  # stops the generation worker thread before the interpreter exits


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    use_window = "--window" in sys.argv
    QApplication.instance() or QApplication(sys.argv[:1])
    {"work": work, "undo-expand": undo_expand, "hammer": hammer, "recover": recover}[mode](folder, use_window)
