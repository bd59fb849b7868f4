"""Getting a model, only when the user asks: a resumable, verified download into the models folder.

Why our own transfer loop around huggingface_hub: ``hf_hub_download`` (2.x) writes to a
process-unique temp file and deletes it on failure, so a cancelled or killed download starts over.
We keep huggingface_hub for everything the hub defines (``HF_ENDPOINT``, the token of
``hf auth login`` / ``HF_TOKEN``, the repo listing with sizes and LFS SHA256s, the resolve URLs,
its error types, its HTTP session) and own only the files and a plain Range-resumed read loop:

* every file streams into ``<models>/.downloads/<name>/<path>.part`` (a hidden staging folder on
  the same disk, which discovery never scans), appended to on the next attempt with a Range request;
* a finished file is checked (size, and SHA256 from the catalogue or the hub's LFS metadata) and
  renamed to its final name inside the staging folder; a wrong checksum deletes the part;
* when every file is there the staging folder (or the single file) is renamed atomically into the
  models folder (or the sub-folder its kind is looked for in: ``Lora/``, ``RealESRGAN/``, …), where
  `app.inference.diffusers.catalog` and `app.inference.restoration.files` find it.

What to fetch is decided first (`app.storage.download_plan`); every failure is a one-line
`DownloadError` (`app.storage.download_errors`). Nothing here runs on its own: there is no update
check and no background fetch. Qt-free and torch-free; huggingface_hub is imported only when a
download starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.atomic import LockBusy, LockFileRefused, atomic_write_bytes, fsync_dir, held_lock, sibling_name
from app.storage.download_catalogue import format_bytes
from app.storage.download_errors import DownloadCancelled, DownloadError, explain
from app.storage.download_plan import DownloadPlan, RemoteFile, plan_download
from app.storage.paths import models_dir

STAGING = ".downloads"
PART = ".part"
PLAN_FILE = ".plan.json"
#: Room left free after a download, so the app can still save projects and autosaves.
DISK_MARGIN = 64 * 1024 * 1024


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int
    rate: float  # bytes per second over this attempt
    eta: float | None  # seconds left, None while unknown
    current: str  # the file being fetched
    phase: str = "downloading"  # or "verifying"


ProgressCallback = Callable[[DownloadProgress], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class Downloaded:
    path: Path
    fetched: int  # bytes fetched by this call (0 when it was already there)
    already_present: bool = False
    folder: str = ""  # the models folder's sub-folder it went in (the plan's): which list to refresh


def free_bytes(folder: Path) -> int:
    """Free space where ``folder`` lives (a function of its own so tests can fill the disk)."""
    return shutil.disk_usage(folder).free


def staging_dir(dest: Path, name: str) -> Path:
    return dest / STAGING / name


def download(plan: DownloadPlan, dest: Path | None = None, *, progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> Downloaded:
    """Fetch ``plan`` into ``dest`` (the models folder by default), resuming what an earlier
    attempt left; returns where the model now is. Raises `DownloadCancelled` or `DownloadError`;
    either way nothing half-written is left where models are looked for."""
    dest = Path(dest) if dest is not None else models_dir()
    final = dest / plan.folder / plan.name
    if final.exists():
        return Downloaded(final, 0, already_present=True, folder=plan.folder)
    stage = staging_dir(dest, plan.name)
    try:
        with _only_one(stage):
            _prepare_stage(stage, plan)
            _check_space(plan, stage)
            tracker = _Tracker(plan, stage, progress, cancel or (lambda: False))
            for remote in plan.files:
                _fetch_one(remote, stage, plan.headers, tracker)
            _publish(plan, stage, final)
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(explain(exc, plan.name)) from None
    _remove_empty(stage.parent)
    return Downloaded(final, tracker.fetched, folder=plan.folder)


def get_model(source: str, dest: Path | None = None, *, progress: ProgressCallback | None = None,
              cancel: CancelCheck | None = None, **plan_options) -> Downloaded:
    """`plan_download` then `download`: what the CLI and the dialog call."""
    return download(plan_download(source, **plan_options), dest, progress=progress, cancel=cancel)


@contextlib.contextmanager
def _only_one(stage: Path) -> Iterator[None]:
    """One download per model at a time (the CLI and a window could both try): two writers
    appending to one part would corrupt it. An OS lock, so a killed process never leaves it held;
    opened without following links or truncating (`app.core.atomic.held_lock`)."""
    stage.parent.mkdir(parents=True, exist_ok=True)
    held = contextlib.ExitStack()
    try:
        held.enter_context(held_lock(stage.with_name(sibling_name(stage, ".lock"))))
    except LockBusy:
        raise DownloadError(f"{stage.name} is already being downloaded (by another window or command); "
                            "wait for it or cancel it") from None
    except LockFileRefused as exc:
        raise DownloadError(f"cannot lock the download of {stage.name}: {exc.strerror}") from None
    with held:
        yield


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when no other download is pending


def _prepare_stage(stage: Path, plan: DownloadPlan) -> None:
    """Reuse the partial files of an earlier attempt only if it fetched the same thing (same
    revision, same files); otherwise start clean."""
    record = json.dumps({"source": plan.source, "files": [[f.path, f.size, f.sha256] for f in plan.files]},
                        sort_keys=True).encode()
    marker = stage / PLAN_FILE
    if stage.exists() and (not marker.is_file() or marker.read_bytes() != record):
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        atomic_write_bytes(marker, record)


def _have(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _check_space(plan: DownloadPlan, stage: Path) -> None:
    needed = sum(max((f.size or 0) - _have(stage / (f.path + PART)), 0)
                 for f in plan.files if not (stage / f.path).is_file())
    free = free_bytes(stage)
    if needed + DISK_MARGIN > free:
        raise DownloadError(f"not enough disk space in {stage.parent.parent}: {plan.name} needs {format_bytes(needed)} "
                            f"more, {format_bytes(free)} free (keeping {format_bytes(DISK_MARGIN)} spare); "
                            "free some space or choose another folder")


def _fetch_one(remote: RemoteFile, stage: Path, headers: dict[str, str], tracker: _Tracker) -> None:
    target = stage / remote.path
    if target.is_file():  # finished and checked by an earlier attempt
        tracker.skip(remote)
        return
    part = target.with_name(target.name + PART)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = _have(part)
    if remote.size is not None and have > remote.size:
        part.unlink()
        have = 0
    tracker.begin(remote, have)
    with open(part, "ab") as fh:
        try:
            if remote.size is None or have < remote.size:
                _stream_into(fh, remote.url, have, headers, tracker)
        finally:
            fh.flush()
            os.fsync(fh.fileno())
        got = fh.tell()
    if remote.size is not None and got != remote.size:
        raise DownloadError(f"the connection closed after {format_bytes(got)} of {format_bytes(remote.size)} of "
                            f"{remote.path}; run it again to resume")
    if remote.sha256:
        digest = tracker.hash(part)
        if digest != remote.sha256.lower():
            part.unlink()
            raise DownloadError(f"checksum mismatch for {remote.path}: expected SHA256 {remote.sha256[:12]}…, "
                                f"got {digest[:12]}…; the file was deleted, nothing was installed (try again)")
    os.replace(part, target)
    tracker.end()


def _stream_into(fh, url: str, have: int, headers: dict[str, str], tracker: _Tracker) -> None:
    """Append the bytes of ``url`` from offset ``have`` (a Range request) to ``fh``; a server that
    ignores Range sends the whole file, which then replaces the part."""
    from huggingface_hub import constants, get_session
    from huggingface_hub.utils import hf_raise_for_status

    headers = {**headers, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with get_session().stream("GET", url, headers=headers, follow_redirects=True,
                              timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
        hf_raise_for_status(response)
        if have and response.status_code == 200:
            fh.seek(0)
            fh.truncate()
            tracker.restart_file()
        for chunk in response.iter_bytes():  # as the bytes arrive: progress and Cancel respond at once
            fh.write(chunk)
            tracker.add(len(chunk))


def _publish(plan: DownloadPlan, stage: Path, final: Path) -> None:
    """One rename puts the complete model where discovery looks; the staging folder goes away."""
    (stage / PLAN_FILE).unlink()
    final.parent.mkdir(parents=True, exist_ok=True)  # Lora/, RealESRGAN/, … may not exist yet
    if plan.is_folder:
        os.replace(stage, final)
    else:
        os.replace(stage / plan.files[0].path, final)
        shutil.rmtree(stage)
    fsync_dir(final.parent)


class _Tracker:
    """Bytes done across all files, the rate of this attempt, and the cancel check between chunks."""

    def __init__(self, plan: DownloadPlan, stage: Path, callback: ProgressCallback | None, cancel: CancelCheck):
        self.total = plan.total
        self.callback = callback
        self.cancel = cancel
        self.finished = 0  # bytes of files done
        self.current = 0  # bytes of the file in progress
        self.name = ""
        self.fetched = 0
        self.started = time.monotonic()
        self.last_report = 0.0

    def skip(self, remote: RemoteFile) -> None:
        self.finished += remote.size or 0
        self._report(force=False)

    def begin(self, remote: RemoteFile, have: int) -> None:
        self._check_cancel()
        self.name = remote.path
        self.current = have
        self._report(force=True)

    def restart_file(self) -> None:
        self.current = 0

    def add(self, n: int) -> None:
        self.current += n
        self.fetched += n
        self._check_cancel()
        self._report(force=False)

    def hash(self, path: Path) -> str:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(8 * 1024 * 1024):
                digest.update(chunk)
                self._check_cancel()
                self._report(force=False, phase="verifying")
        return digest.hexdigest()

    def end(self) -> None:
        self.finished += self.current
        self.current = 0
        self._report(force=True)

    def _check_cancel(self) -> None:
        if self.cancel():
            raise DownloadCancelled("cancelled; the part already fetched is kept, download again to resume")

    def _report(self, force: bool, phase: str = "downloading") -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last_report < 0.1):
            return
        self.last_report = now
        elapsed = max(now - self.started, 1e-6)
        rate = self.fetched / elapsed
        done = self.finished + self.current
        eta = (self.total - done) / rate if rate > 0 and self.total else None
        self.callback(DownloadProgress(done, self.total, rate, eta, self.name, phase))
