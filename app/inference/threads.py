"""``--threads``: how many CPU threads torch uses. On a CPU the thread count changes how sums
are split, so the same seed can differ by 1 in a few pixels between thread counts; pinning it
(the CLI, ``serve`` and each Ray replica alike) makes their pixels identical (docs/API.md)."""

from __future__ import annotations

import sys
from typing import Any


def thread_count(text: str) -> int:
    """argparse ``type`` of ``--threads``: a whole number of 1 or more."""
    count = int(text)
    if count < 1:
        raise ValueError(text)
    return count


def use_threads(count: int | None) -> None:
    """Set torch's intra-op thread count (None: leave torch's default, the core count). Call it
    before starting the threads that run models: a thread that has already run torch keeps the
    count it had."""
    if count is None:
        return
    import torch

    torch.set_num_threads(count)


def runtime(device: str | None = None) -> dict[str, Any]:
    """What decides identical pixels, for a job's record: the device and dtype the backend
    chooses for ``device`` (LoadOptions.device; None = the best available) and this thread's
    torch thread count. Call it on the thread that ran the job. Without torch loaded the job
    ran a classical method (no threads, no dtype: the same pixels anywhere)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {"device": "cpu", "dtype": None, "threads": None}
    from app.inference.diffusers.device import choose_device

    threads = torch.get_num_threads()
    try:
        choice = choose_device(device)
    except Exception as exc:  # a record is no reason to fail a finished job
        return {"device": f"unknown ({type(exc).__name__})", "dtype": None, "threads": threads}
    return {"device": str(choice.device), "dtype": str(choice.dtype).removeprefix("torch."), "threads": threads}
