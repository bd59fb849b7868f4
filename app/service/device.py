"""`DeviceLock`: one lock per compute device, taken by every run that puts a model on it.

A generation and a restoration (upscale, restore faces, …) each fill the accelerator's memory
and its queue; run at once they slow each other down and can run it out of memory. So a
`GenerationService` owns one `DeviceLock` and the `RestorationService` it hands out
(`GenerationService.restoration`) takes the same one: in the window, the CLI and the server, a
restoration waits for the running generation and the other way round.

Re-entrant (a service's batched run calls its single run under the same lock), and it counts the
threads waiting for it, so a status line can say "waiting for the running job" and tests can
wait for a run to be blocked instead of sleeping.
"""

from __future__ import annotations

import threading


class DeviceLock:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._count = threading.Lock()
        self._waiting = 0

    def acquire(self) -> None:
        if self._lock.acquire(blocking=False):
            return
        with self._count:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._count:
                self._waiting -= 1

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> DeviceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """Threads blocked waiting for the device now."""
        return self._waiting


__all__ = ["DeviceLock"]
