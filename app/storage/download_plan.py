"""What to download, decided before a byte is fetched: a catalogue key, a Hugging Face repo id, a
hub page/blob/resolve link or any http(s) URL of one file becomes a `DownloadPlan` — the name in
the models folder, the files with their sizes and SHA256s, and the pinned commit.

Only the files the loader reads are chosen (configs, tokenizer, unet/vae/text_encoder weights, fp16
``.safetensors`` when present), never a pickle file unless the user allows it, and no hub token is
sent to any other host. `app.storage.downloads` then fetches the plan. Reaches the network only
when asked; huggingface_hub is imported only then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.storage import download_catalogue
from app.storage.download_catalogue import catalogue_entry
from app.storage.download_errors import DownloadError, explain, status_text
from app.storage.paths import hub_endpoint

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: The parts of a diffusers SD 1.x repo the loader reads (safety checker and feature extractor
#: are never loaded: the pipeline gets None for both).
WEIGHTS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
#: The file name of a LoRA saved by diffusers; `catalog` names such a LoRA by its folder.
DIFFUSERS_LORA = "pytorch_lora_weights.safetensors"
CONFIGS = ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
           "scheduler/scheduler_config.json")


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
    folder: str = ""  # the models folder's sub-folder it goes in ("" = the root, "Lora", "RealESRGAN", …)

    @property
    def total(self) -> int:
        return sum(f.size or 0 for f in self.files)


def plan_download(source: str, *, filename: str | None = None, revision: str | None = None,
                  allow_pickle: bool = False, token: str | None = None) -> DownloadPlan:
    """Ask the hub (or the web server) what ``source`` is: a catalogue key, a Hugging Face repo
    id, or an http(s) URL of one file. Reaches the network; raises `DownloadError`."""
    source = source.strip()
    entry = catalogue_entry(source)
    try:
        if entry is not None:
            allow_pickle = allow_pickle or entry.weights_only
            if entry.url:
                plan = _plan_url(entry.url, allow_pickle)
                if entry.sha256 and plan.name not in entry.sha256:  # its published checksum must apply
                    raise DownloadError(f"{entry.url} now serves {plan.name!r}, not the file the catalogue knows")
            else:
                plan = _plan_hub(entry.repo_id, filename or entry.filename, revision, allow_pickle, token, entry.key)
            return _placed(_with_known_hashes(plan, entry.sha256), entry)
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
    return replace(plan, files=files)


def _placed(plan: DownloadPlan, entry: download_catalogue.CatalogueEntry) -> DownloadPlan:
    """Into the entry's sub-folder. A lone file with the diffusers LoRA name
    (``pytorch_lora_weights.safetensors``, the same in every repo) goes in a folder named by the
    key, which is what `network_files.discover_loras` then calls it."""
    if not plan.is_folder and plan.name == DIFFUSERS_LORA:
        plan = replace(plan, name=entry.key, is_folder=True)
    return replace(plan, folder=entry.folder)


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
        raise DownloadError(status_text(status, url))
