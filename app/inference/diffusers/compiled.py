"""The compiled UNet step: opt-in, prepared in the background, cached on disk, never in the way.

`CompiledUnet` sits in the UNet's ``forward``. A call whose shape bucket (sample and text
embedding shapes, dtype, LoRA state) has a compiled step ready replays it; any other call runs
eager and, the first time its bucket is seen, starts compiling that bucket on a background
thread with copies of the call's inputs. So the first Generate after loading never waits for a
compile: it runs eager while the compile happens beside it, and the runs after it start on the
compiled step (the switch happens between runs, so one run never mixes the two).

- Mode: ``torch.compile(mode="reduce-overhead")`` on CUDA (Inductor kernels replayed as CUDA
  graphs: 26–28 ms → 7.1 ms per SD 1.5 step on an H200, issue 34), Inductor's default mode
  elsewhere; ``fullgraph=True, dynamic=False``: one static graph per bucket, and the engine
  bounds the buckets by rounding only-masked work sizes to multiples of 64.
- Disk cache: Inductor's own caches live under our cache folder, and the compiler's portable
  artefacts (``torch.compiler.save_cache_artifacts``) are saved per model, dtype, torch version
  and GPU, and loaded before the first compile, so a second launch compiles from the cache.
- Safe by construction: a failure of compile, warm-up (graph capture), cache load or replay turns
  the compiled step off for this model, logs one warning (kept in ``notice``), and the call
  that failed runs eager; no generation fails because of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: Only-masked work sizes are rounded to multiples of this when the step is compiled.
SIZE_BUCKET = 64
#: Compiled buckets kept per model (dynamo's recompile limit is raised to this).
MAX_BUCKETS = 32


def default_mode(device_type: str) -> str | None:
    """CUDA: Inductor + CUDA graphs; elsewhere Inductor's default."""
    return "reduce-overhead" if device_type == "cuda" else None


def cache_dir() -> Path:
    """``INPAINT_STUDIO_COMPILE_CACHE`` or <cache>/compile (platformdirs)."""
    override = os.environ.get("INPAINT_STUDIO_COMPILE_CACHE")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("inpaint-studio", appauthor=False)) / "compile"


def artefact_path(root: Path, model: str, dtype, device_name: str) -> Path:
    """One artefact file per model, dtype, torch version and GPU."""
    import torch

    key = "|".join((model, str(dtype), torch.__version__, device_name))
    return root / f"unet-{hashlib.sha256(key.encode()).hexdigest()[:24]}.bin"


def _clone(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


class CompiledUnet:
    """Installs itself as ``unet.forward``; `uninstall` puts the eager forward back."""

    def __init__(self, unet, *, model: str, device_name: str, device_type: str, backend: str | None = None,
                 mode: str | None = None, state_key: Callable[[], object] = lambda: None,
                 cache_root: Path | None = None):
        import torch
        import torch._dynamo

        self.unet = unet
        self._eager = unet.forward
        self._state_key = state_key
        self._lock = threading.Lock()
        self._ready: set = set()  # buckets whose compiled step has been warmed up
        self._pending: dict = {}  # bucket -> thread compiling (or done compiling) it
        self._use: frozenset = frozenset()  # buckets replayed in the current run
        self.failed: str | None = None
        self.notice: str | None = None
        #: How many buckets were compiled, and how many calls replayed a compiled step.
        self.compiles = 0
        self.compiled_calls = 0
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, MAX_BUCKETS)
        root = cache_root or cache_dir()
        self._artefacts = artefact_path(root, model, unet.dtype, device_name)
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
        self._load_artefacts()
        options = {} if backend is not None else {"mode": mode or default_mode(device_type)}
        #: CUDA graphs reuse their output memory on the next replay: hand out copies.
        self._graphs = options.get("mode") == "reduce-overhead"
        try:
            self._compiled = torch.compile(self._eager, backend=backend or "inductor", fullgraph=True,
                                           dynamic=False, **options)
        except Exception as exc:  # noqa: BLE001 - any failure means eager, never a failed run
            self._compiled = None
            self._fail("compile set-up", exc)
        unet.forward = self._forward

    # -- the run boundary ------------------------------------------------------------------------
    def begin_run(self) -> None:
        """Switch to the buckets compiled so far; a run never changes path half-way."""
        with self._lock:
            self._use = frozenset(self._ready) if self.failed is None else frozenset()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the compiles under way (tests, benchmarks and warm-up scripts)."""
        for thread in list(self._pending.values()):
            thread.join(timeout)

    def uninstall(self) -> None:
        self.wait()
        self.unet.forward = self._eager

    # -- the step --------------------------------------------------------------------------------
    def bucket(self, sample, encoder_hidden_states=None) -> tuple:
        ehs = None if encoder_hidden_states is None else tuple(encoder_hidden_states.shape)
        return (tuple(sample.shape), ehs, str(sample.dtype), str(sample.device), self._state_key())

    def _forward(self, sample, timestep, encoder_hidden_states=None, *args, **kwargs):
        if kwargs.get("down_block_additional_residuals") is not None:  # ControlNet runs: eager, not in the buckets
            return self._eager(sample, timestep, encoder_hidden_states, *args, **kwargs)
        if self.failed is None and self._compiled is not None:
            key = self.bucket(sample, encoder_hidden_states)
            if key in self._use:
                try:
                    out = self._replay(sample, timestep, encoder_hidden_states, *args, **kwargs)
                    self.compiled_calls += 1
                    return out
                except Exception as exc:  # noqa: BLE001
                    self._fail("replay", exc)
            else:
                self._prepare(key, (sample, timestep, encoder_hidden_states, *args), kwargs)
        return self._eager(sample, timestep, encoder_hidden_states, *args, **kwargs)

    def _replay(self, *args, **kwargs):
        import torch

        if not self._graphs:
            return self._compiled(*args, **kwargs)
        torch.compiler.cudagraph_mark_step_begin()  # one denoising step = one graph iteration
        out = self._compiled(*args, **kwargs)
        # a copy (one latent-sized tensor): schedulers may keep it past the next replay
        return torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)

    def _prepare(self, key, args: tuple, kwargs: dict) -> None:
        with self._lock:
            if key in self._pending or len(self._pending) >= MAX_BUCKETS:  # every bucket ever started is in _pending
                return
            args, kwargs = _clone(args), _clone(kwargs)
            thread = threading.Thread(target=self._compile, args=(key, args, kwargs), daemon=True,
                                      name="inpaint-unet-compile")
            self._pending[key] = thread
        thread.start()

    def _compile(self, key, args: tuple, kwargs: dict) -> None:
        import torch

        try:
            with torch.no_grad():  # compile and run once; CUDA graphs are per thread, so the
                self._compiled(*args, **kwargs)  # generating thread records its own on its next calls
            with self._lock:
                self._ready.add(key)
                self.compiles += 1
            self._save_artefacts()
        except Exception as exc:  # noqa: BLE001
            self._fail("compile", exc)

    # -- disk cache --------------------------------------------------------------------------------
    def _load_artefacts(self) -> None:
        if not self._artefacts.is_file():
            return
        try:
            import torch

            if torch.compiler.load_cache_artifacts(self._artefacts.read_bytes()) is None:
                raise ValueError(f"{self._artefacts.name} could not be read (damaged or from another build)")
        except Exception as exc:  # noqa: BLE001
            self._fail("cache load", exc)
            self._artefacts.unlink(missing_ok=True)  # the next launch compiles afresh

    def _save_artefacts(self) -> None:
        try:
            import torch

            saved = torch.compiler.save_cache_artifacts()
            if saved is None:  # nothing portable (a backend other than Inductor)
                return
            self._artefacts.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._artefacts.with_suffix(".tmp")
            tmp.write_bytes(saved[0])
            os.replace(tmp, self._artefacts)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written only costs time
            log.warning("could not save the compiled UNet cache (%s: %s)", type(exc).__name__, exc)

    def _fail(self, stage: str, exc: BaseException) -> None:
        with self._lock:
            if self.failed is not None:
                return
            self.failed = stage
            self._use = frozenset()
            self.notice = (f"Compiled UNet step turned off for this model ({stage} failed: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); running eager.")
        log.warning("%s", self.notice)
