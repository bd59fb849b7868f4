"""Issue 12 in a real window: run under Xvfb with xdotool (both bounded by timeouts).

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/xvfb_crash_recovery.py

1. ``python -m app photo.png``; paint a stroke with the mouse; SIGKILL 5 s after it (the first
   autosave must already hold the stroke: it comes 2.5 s after the first change).
2. Start again: the recovery dialog appears; Enter restores (the default button).
3. The title shows the work as modified; Ctrl+Q asks; Escape (Cancel) keeps the window and the
   recovery file. 4. Ctrl+O, choose a file, with unsaved work: asked; Cancel keeps the work.
Prints one line per check and exits 1 on the first failure. Data, settings and HOME live in a
temporary folder; nothing of the user's is touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core import imageio  # noqa: E402
from app.storage.project import load_project  # noqa: E402

STEP_TIMEOUT_S = 30


def xdo(*args: str, timeout: float = STEP_TIMEOUT_S) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=timeout).stdout.strip()


def find_window(name: str, timeout: float = STEP_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = xdo("search", "--onlyvisible", "--name", name).split()
        if ids:
            return ids[-1]
        time.sleep(0.2)
    names = [xdo("getwindowname", w) for w in xdo("search", "--onlyvisible", "--name", ".").split()]
    raise SystemExit(f"FAIL: no window named {name!r} within {timeout} s; visible: {names}")


def wait_for(what: str, check, timeout: float = STEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"FAIL: {what} (waited {timeout} s)")


def ok(text: str) -> None:
    print(f"ok  {text}", flush=True)


def start_app(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def focus(win: str) -> None:
    """No window manager runs under Xvfb: give the keyboard focus directly."""
    xdo("windowfocus", "--sync", win)
    time.sleep(0.3)


def paint_stroke(win: str) -> None:
    geo = {k: int(v) for k, v in (line.split("=") for line in xdo("getwindowgeometry", "--shell", win).splitlines())}
    cx, cy = geo["X"] + geo["WIDTH"] // 2, geo["Y"] + geo["HEIGHT"] // 2
    xdo("mousemove", str(cx - 60), str(cy))
    xdo("mousedown", "1")
    for dx in range(-60, 61, 10):
        xdo("mousemove", str(cx + dx), str(cy + dx // 4))
        time.sleep(0.02)
    xdo("mouseup", "1")


def recovery_masks(folder: Path) -> list[int]:
    out = []
    for f in folder.glob("session-*.inpaint"):
        try:
            out.append(int((load_project(f).mask > 0).sum()))
        except Exception:  # noqa: BLE001 - a file being replaced right now: try again
            pass
    return out


def quit_during_a_run(env: dict, photo: Path) -> None:
    """3. The real window with a slow fake backend (scripts/slow_backend_app.py): paint, save
    (Ctrl+S, Return: the work is saved), Generate, Ctrl+Q: asked; Return = Stop and Quit; the
    process exits 0 within seconds and never says "QThread: Destroyed while thread is still running"."""
    app = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "slow_backend_app.py"), str(photo)], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        win = find_window("photo.png")
        time.sleep(1.0)
        focus(win)
        paint_stroke(win)
        xdo("key", "--clearmodifiers", "ctrl+s")
        chooser = find_window("Save result as")
        time.sleep(1.0)
        focus(chooser)
        xdo("key", "Return")
        wait_for("the result is saved", lambda: not xdo("search", "--onlyvisible", "--name", r"photo\.png\*|Save result as")
                 and (photo.parent / "photo-inpainted.png").exists())
        focus(find_window("Inpaint Studio"))
        xdo("key", "--clearmodifiers", "ctrl+Return")
        time.sleep(2.0)  # a few 50 ms steps
        focus(find_window("Inpaint Studio"))
        xdo("key", "--clearmodifiers", "ctrl+q")
        box = find_window("Generation running")
        ok("Ctrl+Q during a run asks")
        time.sleep(0.5)
        focus(box)
        t0 = time.monotonic()
        xdo("key", "Return")
        code = app.wait(STEP_TIMEOUT_S)
        took = time.monotonic() - t0
        err = app.stderr.read()
        if code != 0 or "Destroyed while thread" in err:
            raise SystemExit(f"FAIL: exit {code} after Stop and Quit: {err[-800:]}")
        ok(f"Stop and Quit: the run was cancelled and the app exited 0 in {took:.1f} s, no QThread warning")
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)


def main() -> int:
    if not os.environ.get("DISPLAY"):
        raise SystemExit("run under xvfb-run (no DISPLAY)")
    tmp = Path(tempfile.mkdtemp(prefix="xvfb-recovery-"))  # kept: inspect it after a failure
    photo = tmp / "photo.png"
    rng = np.random.default_rng(0)
    imageio.save_image(photo, rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    env = dict(os.environ, INPAINT_STUDIO_DATA=str(tmp / "data"), HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "config"),
               PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="xcb")
    recovery = tmp / "data" / "recovery"
    procs = []
    try:
        app = start_app(env, str(photo))
        procs.append(app)
        win = find_window("photo.png")
        time.sleep(1.0)  # the first paint and the model picker's refresh
        focus(win)
        paint_stroke(win)
        t_stroke = time.monotonic()
        ok("painted a stroke in the real window")
        time.sleep(5.0)
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        masks = recovery_masks(recovery)
        if not masks or max(masks) == 0:
            raise SystemExit(f"FAIL: no recovery file holds the stroke after 5 s ({masks})")
        ok(f"SIGKILL {time.monotonic() - t_stroke:.1f} s after the stroke: the recovery file holds {max(masks)} mask pixels")

        app = start_app(env)
        procs.append(app)
        dialog = find_window("Restore unsaved work")
        ok("restart offers the recovery")
        focus(dialog)
        xdo("key", "Return")
        main_win = wait_for("the title shows unsaved work", lambda: xdo("search", "--onlyvisible", "--name", r"\*.*Inpaint Studio").split())
        win = main_win[-1]
        ok(f"restored; title {xdo('getwindowname', win)!r} marks it unsaved")

        focus(win)
        xdo("key", "--clearmodifiers", "ctrl+q")
        question = find_window("Unsaved changes")
        ok("Ctrl+Q asks")
        focus(question)
        xdo("key", "Escape")
        wait_for("the question closes", lambda: not xdo("search", "--onlyvisible", "--name", "Unsaved changes"))
        time.sleep(1.0)
        if app.poll() is not None:
            raise SystemExit(f"FAIL: the app quit after Cancel (exit {app.returncode})")
        masks = recovery_masks(recovery)
        if not masks or max(masks) == 0:
            raise SystemExit(f"FAIL: the recovery is gone after Cancel ({masks})")
        ok(f"after Cancel the app runs and the recovery is still there ({max(masks)} mask pixels)")

        focus(win)
        xdo("key", "--clearmodifiers", "ctrl+o")
        chooser = find_window("Open image")
        time.sleep(1.0)  # the dialog reads the folder
        focus(chooser)
        xdo("type", "--delay", "30", str(photo))
        for _ in range(3):  # the first Return may only close the file-name completer
            time.sleep(1.5)
            asked = xdo("search", "--onlyvisible", "--name", "Unsaved changes")
            chooser_open = xdo("search", "--onlyvisible", "--name", "Open image")
            print(f"    asked={bool(asked)} chooser={bool(chooser_open)}", flush=True)
            if asked or not chooser_open:
                break  # asked, or (the failure) opened without asking
            focus(chooser)
            xdo("key", "Return")
        question = find_window("Unsaved changes")
        ok("Ctrl+O, a file chosen, with unsaved work: asked before anything is replaced")
        time.sleep(0.5)
        focus(question)
        xdo("key", "Escape")
        wait_for("the question closes", lambda: not xdo("search", "--onlyvisible", "--name", "Unsaved changes"))
        if not xdo("search", "--onlyvisible", "--name", r"photo\.png\*"):
            raise SystemExit("FAIL: the unsaved work was replaced after Cancel")
        ok("after Cancel the restored, unsaved work is still open")
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        quit_during_a_run(dict(env, INPAINT_STUDIO_DATA=str(tmp / "data-run")), photo)  # no recovery offered
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


if __name__ == "__main__":
    sys.exit(main())
