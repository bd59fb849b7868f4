"""``--threads``: how many CPU threads torch uses. On a CPU the thread count changes how sums
are split, so the same seed can differ by 1 in a few pixels between thread counts; pinning it
(the CLI, ``serve`` and each Ray replica alike) makes their pixels identical (docs/API.md)."""

from __future__ import annotations


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
