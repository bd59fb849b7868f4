"""Gathering compatible jobs of concurrent clients into one batched run.

After the queue's worker takes a job, it waits up to ``window_s`` for waiting jobs with the same
`GenerationService.batch_key` (same model, size, steps, scheduler, guidance, strength, mode,
LoRAs), up to ``max_items`` candidates in all, and runs them as one batched backend call
(`GenerationService.run_batch`); each job keeps its own record, progress, cancel and metrics.
A compatible job behind an incompatible one may run first (it joins the batch in progress);
the incompatible one is still the next to be taken. ``window_s`` 0 turns gathering off.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

#: Default wait for batch-mates: small against a GPU image (~0.25–1 s), long enough for clients
#: that resubmit as soon as their previous answer came back.
WINDOW_MS = 10.0
#: Default cap on candidates per batched call (the backends' max batch).
MAX_ITEMS = 8


@dataclass(frozen=True)
class BatchPolicy:
    window_s: float = WINDOW_MS / 1000
    max_items: int = MAX_ITEMS

    @property
    def enabled(self) -> bool:
        return self.window_s > 0 and self.max_items > 1

    def take(self, batch: list, key: Hashable, waiting: collections.deque, key_of: Callable[[Any], Hashable | None]) -> bool:
        """Move the waiting tickets compatible with ``key`` into ``batch``, in queue order, while
        they fit in ``max_items`` candidates (called holding the queue's lock). True once full."""
        items = sum(_items(t) for t in batch)
        for ticket in list(waiting):
            if items >= self.max_items:
                break
            if ticket.request is None or ticket.cancel.is_set() or items + _items(ticket) > self.max_items:
                continue
            try:
                same = key_of(ticket.request) == key
            except Exception:  # a request its own run will refuse: it runs alone and says why
                same = False
            if same:
                waiting.remove(ticket)
                batch.append(ticket)
                items += _items(ticket)
        return items >= self.max_items


def _items(ticket) -> int:
    return ticket.request.params.batch_size if ticket.request is not None else 1
