"""Autosave and crash recovery, without Qt: one recovery slot per running session.

Each session owns ``<recovery>/session-<pid>-<token>.inpaint`` plus a ``.lock`` file it keeps open
with an exclusive OS lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows). The OS drops that
lock when the process dies, however it dies (SIGKILL, power button in the debugger, a segfault in a
driver), so at the next start a recovery file whose lock can be taken belongs to a session that did
not exit cleanly: that is what `pending_recoveries` offers. A second instance running at the same
time cannot take a live session's lock, so it never offers (or deletes) the other's work.

Saving copies nothing heavy on the caller's thread: the caller hands over a snapshot (the
Document's pixels and mask copied with one memcpy each; the original and candidates are immutable
and shared), and the PNG encoding, zip writing and fsync happen on one worker thread. Only the
newest pending snapshot is written (older queued ones are dropped: they are superseded).

The folder is `app.storage.paths.data_dir()` / "recovery" (``$INPAINT_STUDIO_DATA`` overrides it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app import __version__
from app.storage.paths import ENV_DATA, data_dir
from app.storage.project import (
    PROJECT_SUFFIX,
    PngCache,
    ProjectError,
    ProjectInfo,
    ProjectState,
    load_project,
    project_info,
    save_project,
)

LOCK_SUFFIX = ".lock"
#: PNG compression for autosaves: level 1 is several times faster than 6 and only ~10 % larger.
AUTOSAVE_COMPRESSION = 1


def recovery_dir() -> Path:
    return data_dir() / "recovery"


# --------------------------------------------------------------------------------------------
# OS locks
# --------------------------------------------------------------------------------------------
def _try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on ``fd``; False if another process (or fd) holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows CI only
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)


def _lock_is_held(lock_path: Path) -> bool:
    """True if a live process holds ``lock_path`` (we could not take it ourselves)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: be safe, never offer (or delete) someone else's work
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# recoveries left by other sessions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recovery:
    """A recovery project left by a session that did not exit cleanly."""

    path: Path
    lock_path: Path
    pid: int | None
    saved_at: float  # file modification time (seconds since the epoch)
    size: int

    def info(self) -> ProjectInfo:
        """Image size, generation count and thumbnail (manifest only); `ProjectError` if damaged."""
        return project_info(self.path)

    def load(self) -> ProjectState:
        return load_project(self.path)


def _read_pid(lock_path: Path) -> int | None:
    try:
        data = json.loads(lock_path.read_text("utf-8"))
        pid = data.get("pid")
        return pid if isinstance(pid, int) else None
    except (OSError, ValueError, AttributeError):
        return None


def pending_recoveries(folder: Path | None = None, *, exclude: Path | None = None) -> list[Recovery]:
    """Recovery files whose session is gone (its lock is free or missing), newest first."""
    folder = folder or recovery_dir()
    found = []
    try:
        candidates = sorted(folder.glob(f"session-*{PROJECT_SUFFIX}"))
    except OSError:
        return []
    for path in candidates:
        if exclude is not None and path == exclude:
            continue
        lock_path = path.with_suffix(LOCK_SUFFIX)
        if _lock_is_held(lock_path):
            continue  # a running instance owns it
        try:
            st = path.stat()
        except OSError:
            continue
        found.append(Recovery(path, lock_path, _read_pid(lock_path), st.st_mtime, st.st_size))
    found.sort(key=lambda r: r.saved_at, reverse=True)
    return found


def discard(recovery: Recovery) -> None:
    """Delete a recovery the user declined (only if its session is still gone)."""
    if _lock_is_held(recovery.lock_path):
        raise RuntimeError(f"{recovery.path.name} belongs to a running session")
    for p in (recovery.path, recovery.lock_path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _remove_stale_files(folder: Path, max_age_s: float = 0.0) -> None:
    """What dead sessions leave besides their recovery file: temp files of interrupted saves
    (``.session-…inpaint.*.tmp``; the complete previous file is kept) and locks with no recovery
    file beside them (a session killed before its first save). Their lock is free, so no one
    will finish or need them."""
    now = time.time()
    for tmp in folder.glob(".session-*.tmp"):
        stem = tmp.name[1:].split(PROJECT_SUFFIX)[0]
        with contextlib.suppress(OSError):
            if not _lock_is_held(folder / (stem + LOCK_SUFFIX)) and now - tmp.stat().st_mtime >= max_age_s:
                tmp.unlink()
    for lock in folder.glob(f"session-*{LOCK_SUFFIX}"):
        with contextlib.suppress(OSError):
            if not lock.with_suffix(PROJECT_SUFFIX).exists() and not _lock_is_held(lock):
                lock.unlink()


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, (ProjectError, OSError)) else f"Autosave failed: {exc!r}"


def _without_candidates(state: ProjectState) -> ProjectState | None:
    """``state`` with every generation's candidate images left out, or None if it has none."""
    if not any(g.candidates for g in state.generations):
        return None
    return dataclasses.replace(state, generations=[dataclasses.replace(g, candidates=[]) for g in state.generations])


# --------------------------------------------------------------------------------------------
# this session's autosaver
# --------------------------------------------------------------------------------------------
class Autosaver:
    """Owns this session's recovery slot and writes snapshots to it on a worker thread.

    ``on_saved(path)`` / ``on_error(message)`` are called on the worker thread after each write.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        on_saved: Callable[[Path], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        compress_level: int = AUTOSAVE_COMPRESSION,
    ) -> None:
        self.folder = Path(folder) if folder is not None else recovery_dir()
        self.on_saved = on_saved
        self.on_error = on_error
        self.compress_level = compress_level
        self.path: Path | None = None
        self.lock_path: Path | None = None
        self._lock_fd: int | None = None
        self._cache = PngCache()
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._pending: ProjectState | None = None
        self._busy = False
        self._closed = False
        self._adopted: list[Recovery] = []
        self.saves = 0
        self.last_error: str | None = None
        self.last_saved_at: float | None = None
        self.last_duration_s: float | None = None
        self._thread: threading.Thread | None = None

    def _ensure_slot(self) -> Path:
        """Claim this session's slot on first use, so a window that never saves leaves nothing."""
        if self.path is not None:
            return self.path
        try:
            return self._claim_slot()
        except OSError as exc:
            raise ProjectError(
                f"Autosave is off: the recovery folder {self.folder} cannot be written "
                f"({exc.strerror or exc}). Work is not protected against a crash until you save it; "
                f"make the folder writable, or set {ENV_DATA} to a folder you can write to."
            ) from exc

    def _claim_slot(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"session-{os.getpid()}-{secrets.token_hex(4)}"
        lock_path = self.folder / (stem + LOCK_SUFFIX)
        # A fresh random name: created exclusively, never following a link planted in its place.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        if not _try_lock(fd):  # a fresh random name: only fails on exotic file systems
            os.close(fd)
            raise OSError(f"cannot lock {lock_path}")
        os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time(), "app_version": __version__}).encode())
        os.fsync(fd)
        self._lock_fd, self.lock_path = fd, lock_path
        self.path = self.folder / (stem + PROJECT_SUFFIX)
        _remove_stale_files(self.folder)
        return self.path

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="autosave", daemon=True)
            self._thread.start()

    # -- recoveries ----------------------------------------------------------------------------
    def pending_recoveries(self) -> list[Recovery]:
        """Recoveries of other, dead sessions (never this session's own slot)."""
        with contextlib.suppress(OSError):
            _remove_stale_files(self.folder)
        return [r for r in pending_recoveries(self.folder, exclude=self.path) if r not in self._adopted]

    def adopt(self, recovery: Recovery, state: ProjectState | None = None) -> ProjectState:
        """Continue from a recovery (``state``: already loaded, e.g. off the GUI thread); its file
        is deleted only after this session's next successful autosave, so the work is on disk at
        every moment."""
        state = recovery.load() if state is None else state
        self._adopted.append(recovery)
        return state

    def discard(self, recovery: Recovery) -> None:
        discard(recovery)

    # -- saving --------------------------------------------------------------------------------
    def save(self, state: ProjectState, *, complete: bool = True) -> Path:
        """Write ``state`` now, on the caller's thread (raises `ProjectError`). Recoveries this
        session adopted are deleted after a ``complete`` save only (not one missing candidates)."""
        with self._write_lock:  # the worker and a synchronous caller must not interleave
            t0 = time.perf_counter()
            path = self._ensure_slot()
            save_project(path, state, compress_level=self.compress_level, cache=self._cache, private=True)
        self.last_duration_s = time.perf_counter() - t0
        self.last_saved_at = time.time()
        self.saves += 1
        if not complete:
            return path
        self.last_error = None
        for rec in self._adopted:
            with contextlib.suppress(OSError, RuntimeError):
                discard(rec)
        self._adopted.clear()
        return path

    def save_async(self, state: ProjectState) -> None:
        """Queue ``state`` (a snapshot the caller will not mutate) for the worker; newest wins."""
        with self._cond:
            if self._closed:
                return
            self._pending = state
            self._cond.notify_all()
        self._ensure_thread()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until queued snapshots are written; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None or self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None and self._closed:
                    return
                state, self._pending = self._pending, None
                self._busy = True
            try:
                self._write_or_fall_back(state)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write_or_fall_back(self, state: ProjectState) -> None:
        """Write ``state``; if that fails, write it without the generations' candidates (the
        largest and least essential part: records, seeds and the applied index stay), so the
        recovery is as new as possible. A failure leaves the last good file in place (the write is
        atomic) and is reported; ``last_error`` stays set until a complete save succeeds."""
        try:
            path = self.save(state)
        except Exception as exc:  # the worker must outlive any one failed save
            message = _describe(exc)
            lighter = _without_candidates(state)
            if lighter is not None:
                try:
                    self.save(lighter, complete=False)
                except Exception:  # noqa: BLE001 - the first reason is the one to tell
                    pass
                else:
                    message += " Saved a recovery without the candidates; the image, mask and history are protected."
            repeated = message == self.last_error
            self.last_error = message
            if self.on_error and not repeated:  # the same failure is reported once, not on every save
                self.on_error(message)
        else:
            if self.on_saved:
                self.on_saved(path)

    # -- ending the session ----------------------------------------------------------------------
    def close(self, *, clean: bool) -> None:
        """Stop the worker (after writing what is queued). ``clean`` deletes the recovery slot:
        call it with True only when the user saved or chose to discard their work."""
        with self._cond:
            self._closed = True
            if clean:
                self._pending = None  # about to be deleted anyway: do not make the user wait for it
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=120)
        if self.path is None:
            return
        if clean:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._lock_fd is not None:
            _unlock(self._lock_fd)
            os.close(self._lock_fd)
            self._lock_fd = None
            if clean or not self.path.exists():
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()

    def mark_clean_exit(self) -> None:
        """The session ends normally: nothing to recover next time."""
        self.close(clean=True)

    def discard_current(self) -> None:
        """Forget this session's recovery file (e.g. right after the user saved the project)."""
        self.flush()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
