"""Job records and outputs on disk, so a restart loses no finished job.

Layout under ``--data``: ``jobs/<id>.json`` (one record per job, rewritten atomically on every
change) and ``outputs/<id>-<k>.png`` (each candidate with the editor's PNG metadata, written by
the service's `save_outputs`, all or none, with fast PNG compression: a client waits for it). Records on disk
are read lazily (the first time a client asks for one, or lists): start-up costs one directory
listing, and a record over `MAX_RECORD_BYTES` (never written by this version) is skipped. A job
that was queued or running when the server stopped is marked ``failed`` with "server
restarted" when its record is read back — never dropped. (A job's first record is written while it
runs, `JobQueue.submit`; routes that hand out an unfinished job's id wait for it first.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.atomic import atomic_write_bytes
from app.core.records import GenerationRecord
from app.server.models import public_record
from app.service.records import candidate_params, save_outputs

log = logging.getLogger(__name__)

STARTING, PROCESSING, SUCCEEDED, FAILED, CANCELED = "starting", "processing", "succeeded", "failed", "canceled"
FINISHED = (SUCCEEDED, FAILED, CANCELED)
RESTARTED = "server restarted"


@dataclass
class JobRecord:
    """What a client can ask about a job; JSON-safe so it is stored as is."""

    id: str
    api: str  # which route made it: openai, segmind, predictions, appypie, a1111
    status: str = STARTING
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    params: dict[str, Any] = field(default_factory=dict)  # GenerationParams as asked (validated)
    outputs: list[str] = field(default_factory=list)  # file names under outputs/
    seeds: list[int] = field(default_factory=list)
    candidate_params: list[dict[str, Any]] = field(default_factory=list)  # what regenerates each output
    error: str | None = None
    logs: str = ""
    predict_time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # shape-specific: the input echo, the model slug
    #: Whose job it is: a digest of the creating token (`app.server.auth.owner_of`); "" when made without tokens.
    owner: str = ""
    #: Where it ran: device, dtype, torch threads (`app.inference.threads.runtime`); the same
    #: seed and params give identical pixels only where these match (docs/DEPLOY.md).
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


ID_BYTES = 13  # 104 random bits: guessing one live id among a million takes ~2**84 tries
#: The only names ``/files/`` serves: ``<job id>-<k>.png`` exactly as `save_outputs` writes them.
OUTPUT_NAME = re.compile(rf"[0-9a-f]{{{2 * ID_BYTES}}}-[0-9]{{1,2}}\.png")


#: A record file larger than this is not read (the input echo is bounded far below it).
MAX_RECORD_BYTES = 1024 * 1024


def new_id() -> str:
    """Unguessable (served output URLs carry it), URL-safe, lower-case like Replicate's ids."""
    return secrets.token_hex(ID_BYTES)


class JobStore:
    """Thread-safe store of `JobRecord` s backed by one JSON file per job."""

    def __init__(self, root: Path):
        self.jobs_dir = root / "jobs"
        self.outputs_dir = root / "outputs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._load()

    def _load(self) -> None:
        """Note which records are on disk; each is read when first asked for (`_read`)."""
        self._on_disk = {p.stem for p in self.jobs_dir.glob("*.json")}

    def _read(self, job_id: str) -> JobRecord | None:
        """The record ``job_id`` from disk (called holding the lock), or None."""
        self._on_disk.discard(job_id)
        path = self.jobs_dir / f"{job_id}.json"
        try:
            if path.is_symlink() or path.stat().st_size > MAX_RECORD_BYTES:
                raise ValueError("a link, or larger than any record this server writes")
            data = json.loads(path.read_text(encoding="utf-8"))
            job = JobRecord(**{k: v for k, v in data.items() if k in _FIELDS})
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            log.warning("skipping unreadable job record %s: %s", path.name, exc)
            return None
        if job.id != job_id:
            log.warning("skipping job record %s: it names job %s", path.name, job.id)
            return None
        self._jobs[job.id] = job
        if not job.finished:
            job.logs += f"{RESTARTED}: the job was {job.status} when the server stopped\n"
            job.status, job.error, job.completed_at = FAILED, RESTARTED, time.time()
            self._write(job)
        return job

    def create(self, api: str, params: dict[str, Any], extra: dict[str, Any] | None = None, *,
               persist: bool = True, owner: str = "") -> JobRecord:
        """A new record; ``persist=False`` leaves writing it to the caller (`persist`)."""
        job = JobRecord(id=new_id(), api=api, params=params, extra=dict(extra or {}), owner=owner)
        with self._lock:
            self._jobs[job.id] = job
            if persist:
                self._write(job)
        return job

    def persist(self, job: JobRecord) -> None:
        """Write the record as it is now. Every write holds the lock and writes the current state,
        so a late write never brings back an older one."""
        with self._lock:
            self._write(job)

    def update(self, job: JobRecord, *, persist: bool = True, **changes: Any) -> JobRecord:
        """Change a record; ``persist=False`` keeps a transient change (queued → running) in memory
        only: a restart fails unfinished jobs either way, and each write costs two fsyncs."""
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            if persist:
                self._write(job)
        return job

    def get(self, job_id: str, owner: str | None = None) -> JobRecord | None:
        """The job, or None; with ``owner``, None also when the job is someone else's."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None and job_id in self._on_disk:
                job = self._read(job_id)
        return job if job is not None and (owner is None or job.owner == owner) else None

    def all(self, owner: str | None = None) -> list[JobRecord]:
        """Every job (of ``owner`` only, when given), newest first."""
        with self._lock:
            for job_id in list(self._on_disk):
                self._read(job_id)
            jobs = [j for j in self._jobs.values() if owner is None or j.owner == owner]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def save_outputs(self, job: JobRecord, record: GenerationRecord) -> None:
        """Write every candidate (PNG with metadata) or none (the service's `save_outputs`); the
        record names them when the job is finished (one write), so a record never names a file
        that is not complete on disk, nor a job half of whose outputs are."""
        names = [f"{job.id}-{k}.png" for k in range(len(record.candidates))]
        save_outputs([self.outputs_dir / name for name in names], public_record(record), fast_png=True)
        self.update(job, persist=False, outputs=names, seeds=list(record.seeds),
                    candidate_params=[_jsonable(candidate_params(record, k).to_dict()) for k in range(len(names))])

    def output_path(self, name: str) -> Path | None:
        """The file of a served output, or None. Only names of the `OUTPUT_NAME` pattern are
        looked up, so no separator, dot-dot, temp file or record name ever reaches the disk."""
        if not OUTPUT_NAME.fullmatch(name):
            return None
        path = self.outputs_dir / name
        # A link planted in the data folder (by another user, a backup tool) is not followed.
        return path if path.is_file() and not path.is_symlink() else None

    def _write(self, job: JobRecord) -> None:
        data = json.dumps(_jsonable(dataclasses.asdict(job)), indent=1).encode()
        atomic_write_bytes(self.jobs_dir / f"{job.id}.json", data)


_FIELDS = {f.name for f in dataclasses.fields(JobRecord)}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
