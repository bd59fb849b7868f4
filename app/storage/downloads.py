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
  models folder, where `app.inference.diffusers.catalog.discover_models` finds it.

Nothing here runs on its own: there is no update check and no background fetch. Qt-free and
torch-free; huggingface_hub is imported only when a download starts.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.core.atomic import atomic_write_bytes, fsync_dir
from app.storage import download_catalogue
from app.storage.download_catalogue import catalogue_entry, format_bytes
from app.storage.paths import models_dir

STAGING = ".downloads"
PART = ".part"
PLAN_FILE = ".plan.json"
#: Room left free after a download, so the app can still save projects and autosaves.
DISK_MARGIN = 64 * 1024 * 1024
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: The parts of a diffusers SD 1.x repo the loader reads (safety checker and feature extractor
#: are never loaded: the pipeline gets None for both).
WEIGHTS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
CONFIGS = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
           "scheduler/scheduler_config.json")


class DownloadError(Exception):
    """A download that cannot go on; ``str(exc)`` is one line saying why and what to do."""


class DownloadCancelled(DownloadError):
    """The user cancelled; the partial files stay in the staging folder for the next attempt."""


# -- what to fetch -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    path: str  # where it goes, relative to the model folder (or the file name of a single file)
    url: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class DownloadPlan:
    """Everything decided before a byte is fetched: the name in the models folder, whether it is a
    folder (diffusers layout) or one file, the pinned revision and the files."""

    source: str
    name: str
    is_folder: bool
    files: tuple[RemoteFile, ...]
    revision: str = ""
    headers: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total(self) -> int:
        return sum(f.size or 0 for f in self.files)


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


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` read now (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def plan_download(source: str, *, filename: str | None = None, revision: str | None = None,
                  allow_pickle: bool = False, token: str | None = None) -> DownloadPlan:
    """Ask the hub (or the web server) what ``source`` is: a catalogue key, a Hugging Face repo
    id, or an http(s) URL of one file. Reaches the network; raises `DownloadError`."""
    source = source.strip()
    entry = catalogue_entry(source)
    try:
        if entry is not None:
            plan = _plan_hub(entry.repo_id, filename or entry.filename, revision, allow_pickle, token, entry.key)
            return _with_known_hashes(plan, entry.sha256)
        hub_ref = _hub_reference(source)
        if hub_ref is not None:  # a hub page, blob or resolve URL: use the hub (and its token)
            repo_id, in_repo, at = hub_ref
            return _plan_hub(repo_id, filename or in_repo, revision or at, allow_pickle, token, None)
        if source.lower().startswith(("http://", "https://")):
            return _plan_url(source, allow_pickle)
        if REPO_ID.match(source):
            return _plan_hub(source, filename, revision, allow_pickle, token, None)
    except DownloadError:
        raise
    except ImportError as exc:
        raise DownloadError(f"downloading needs huggingface_hub ({exc}); install the 'diffusion' extra") from None
    except Exception as exc:  # network / hub errors become one line
        raise DownloadError(explain(exc, source)) from None
    keys = ", ".join(e.key for e in download_catalogue.CATALOGUE)
    raise DownloadError(f"{source!r} is not a catalogue name ({keys}), a Hugging Face repo id (org/name) "
                        "or an http(s) URL")


def _hub_reference(url: str) -> tuple[str, str | None, str | None] | None:
    """(repo id, file, revision) of a URL on the hub (``HF_ENDPOINT`` or huggingface.co): the
    model's page, or a ``blob``/``resolve`` link to one of its files; None for any other URL."""
    parts = urlsplit(url)
    hosts = {urlsplit(hub_endpoint()).netloc, "huggingface.co"}
    if parts.scheme not in ("http", "https") or parts.netloc not in hosts:
        return None
    segments = [unquote(x) for x in parts.path.strip("/").split("/")]
    if len(segments) == 2:
        return "/".join(segments), None, None
    if len(segments) >= 5 and segments[2] in ("blob", "resolve"):
        return "/".join(segments[:2]), "/".join(segments[4:]), segments[3]
    return None


def _with_known_hashes(plan: DownloadPlan, known: dict[str, str]) -> DownloadPlan:
    files = tuple(RemoteFile(f.path, f.url, f.size, known.get(f.path, f.sha256)) for f in plan.files)
    return DownloadPlan(plan.source, plan.name, plan.is_folder, files, plan.revision, plan.headers)


def _weight_choice(names: set[str], part: str, allow_pickle: bool) -> str | None:
    """The weights file of one component: fp16 safetensors (half the download; the loader reads
    them as the fp16 variant), else full-precision safetensors, else .bin when pickle is allowed."""
    stem = f"{part}/{WEIGHTS[part]}"
    for candidate in (f"{stem}.fp16.safetensors", f"{stem}.safetensors"):
        if candidate in names:
            return candidate
    if allow_pickle:
        return next((c for c in (f"{stem}.fp16.bin", f"{stem}.bin") if c in names), None)
    return None


def select_repo_files(names: set[str], repo_id: str, filename: str | None, allow_pickle: bool) -> list[str]:
    """The files of the repo an SD 1.5 model needs, and nothing else (no .ckpt, no .bin unless
    allowed, no duplicate full-precision copies, no safety checker)."""
    if filename:
        if filename not in names:
            raise DownloadError(f"{repo_id} has no file {filename} (404)")
        _check_suffix(filename, allow_pickle)
        return [filename]
    if "model_index.json" in names:
        wanted = [c for c in CONFIGS if c in names]
        wanted += sorted(n for n in names if n.startswith("tokenizer/") and n.endswith((".json", ".txt")))
        for part in WEIGHTS:
            choice = _weight_choice(names, part, allow_pickle)
            if choice is None:
                if any(n.startswith(f"{part}/") and n.endswith(".bin") for n in names):
                    raise DownloadError(f"{repo_id}: {part}/ has only pickle .bin weights, no .safetensors; "
                                        "allow pickle files only if you trust the source")
                raise DownloadError(f"{repo_id}: {part}/ has no weights; this is not a complete SD 1.5 model")
            wanted.append(choice)
        return wanted
    singles = sorted(n for n in names if "/" not in n and n.endswith(".safetensors"))
    if len(singles) == 1:
        return singles
    if not singles:
        raise DownloadError(f"{repo_id} is neither a diffusers model (no model_index.json) nor has a .safetensors checkpoint")
    raise DownloadError(f"{repo_id} holds several checkpoints; choose one with --file: {', '.join(singles)}")


def _check_suffix(name: str, allow_pickle: bool) -> None:
    suffix = Path(name).suffix.lower()
    if suffix == ".safetensors" or (allow_pickle and suffix in PICKLE_SUFFIXES):
        return
    if suffix in PICKLE_SUFFIXES:
        raise DownloadError(f"{name} is a pickle file (loading it can run arbitrary code); "
                            "allow pickle files only if you trust the source")
    raise DownloadError(f"{name} is not a model file (expected .safetensors)")


def _plan_hub(repo_id: str, filename: str | None, revision: str | None, allow_pickle: bool,
              token: str | None, key: str | None) -> DownloadPlan:
    from huggingface_hub import HfApi, constants, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    endpoint = hub_endpoint()
    info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision, files_metadata=True,
                                                            timeout=constants.HF_HUB_ETAG_TIMEOUT)
    siblings = {s.rfilename: s for s in info.siblings or []}
    chosen = select_repo_files(set(siblings), repo_id, filename, allow_pickle)
    commit = info.sha or revision or "main"
    files = []
    for name in chosen:
        s = siblings[name]
        size = s.lfs.size if s.lfs else s.size
        sha = s.lfs.sha256 if s.lfs else None
        url = hf_hub_url(repo_id, name, revision=commit, endpoint=endpoint)
        files.append(RemoteFile(name, url, size, sha))
    is_folder = filename is None and len(chosen) > 1
    name = key or repo_id.split("/")[1]
    if not is_folder:
        name = Path(chosen[0]).name
    headers = build_hf_headers(token=token)
    return DownloadPlan(f"{repo_id}@{commit}", name, is_folder, tuple(files), commit, headers)


def _plan_url(url: str, allow_pickle: bool) -> DownloadPlan:
    """One file from any web server: its name from Content-Disposition or the URL path, its size
    from Content-Length. No hub token is ever sent to another host."""
    from huggingface_hub import constants, get_session

    response = get_session().head(url, follow_redirects=True, headers={"Accept-Encoding": "identity"},
                                  timeout=constants.HF_HUB_ETAG_TIMEOUT)
    _raise_for_status(response.status_code, url)
    disposition = response.headers.get("Content-Disposition", "")
    match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', disposition)
    name = Path(unquote(match.group(1) if match else urlsplit(url).path)).name
    if not name:
        raise DownloadError(f"{url}: the server does not say what the file is called")
    _check_suffix(name, allow_pickle)
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    return DownloadPlan(url, name, False, (RemoteFile(name, str(response.url), size, None),))


def _raise_for_status(status: int, url: str) -> None:
    if status >= 400:
        raise DownloadError(_status_text(status, url))


def _status_text(status: int, what: str) -> str:
    if status == 401:
        return f"{what}: 401 unauthorized: log in (hf auth login) or set HF_TOKEN, and accept the model's licence on its page if it is gated"
    if status == 403:
        return f"{what}: 403 forbidden: your token may not access this model; accept its licence on its page"
    if status == 404:
        return f"{what}: 404 not found; check the name"
    return f"{what}: the server answered HTTP {status}; try again later"


# -- errors as one line --------------------------------------------------------------------------
def explain(exc: BaseException, what: str) -> str:
    """One line for any failure of a download: no network, 401 gated, 404, disk full, ..."""
    if isinstance(exc, DownloadError):
        return str(exc)
    name = type(exc).__name__
    if name == "OfflineModeIsEnabled":
        return "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so downloads are off; unset it to download"
    if name == "GatedRepoError":
        return (f"{what} is gated (401): accept its licence on its Hugging Face page, then log in "
                "(hf auth login) or set HF_TOKEN")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "RemoteEntryNotFoundError", "EntryNotFoundError"):
        status = getattr(getattr(exc, "response", None), "status_code", 404)
        if status == 401:
            return f"{what}: not found or private (401); check the name, or log in (hf auth login) if it is gated"
        return f"{what}: not found on {hub_endpoint()} (404); check the name"
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", 0) >= 400:
        return _status_text(response.status_code, what)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"disk full while downloading {what}; free some space and run it again to resume"
    if name in ("ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "ReadError",
                "NetworkError", "TimeoutException", "PoolTimeout", "ProxyError", "LocalProtocolError") or \
            isinstance(exc, (ConnectionError, TimeoutError)):
        return f"no network: cannot reach the server for {what} ({exc}); check the connection and run it again to resume"
    if isinstance(exc, OSError):
        return f"cannot write the download of {what}: {exc.strerror or exc}"
    return f"download of {what} failed: {name}: {exc}"


# -- the transfer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Downloaded:
    path: Path
    fetched: int  # bytes fetched by this call (0 when it was already there)
    already_present: bool = False


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
    final = dest / plan.name
    if final.exists():
        return Downloaded(final, 0, already_present=True)
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
    return Downloaded(final, tracker.fetched)


def get_model(source: str, dest: Path | None = None, *, progress: ProgressCallback | None = None,
              cancel: CancelCheck | None = None, **plan_options) -> Downloaded:
    """`plan_download` then `download`: what the CLI and the dialog call."""
    return download(plan_download(source, **plan_options), dest, progress=progress, cancel=cancel)


@contextlib.contextmanager
def _only_one(stage: Path) -> Iterator[None]:
    """One download per model at a time (the CLI and a window could both try): two writers
    appending to one part would corrupt it. An OS lock, so a killed process never leaves it held."""
    from filelock import FileLock, Timeout

    stage.parent.mkdir(parents=True, exist_ok=True)
    lock_path = stage.with_name(stage.name + ".lock")
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DownloadError(f"{stage.name} is already being downloaded (by another window or command); "
                            "wait for it or cancel it") from None
    try:
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            lock_path.unlink()


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
