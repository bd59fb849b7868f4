"""Throughput of the model download loop (app/storage/downloads.py) against the fake hub on
127.0.0.1: one 256 MB .safetensors file, fetched then SHA256-checked. Prints MB/s of the transfer
and of the whole call (with the check). Run: python bench/bench_download.py"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)

from fake_hub import FakeHub, FakeRepo, running  # noqa: E402

SIZE = 256 * 1024 * 1024


def main() -> None:
    hub = FakeHub(repos={"bench/big": FakeRepo({"big.safetensors": os.urandom(SIZE)})})
    with running(hub) as url, tempfile.TemporaryDirectory() as dest:
        os.environ["HF_ENDPOINT"] = url
        from app.storage import downloads

        marks: list[tuple[float, str]] = []
        start = time.perf_counter()
        result = downloads.get_model("bench/big", Path(dest), progress=lambda p: marks.append((time.perf_counter(), p.phase)))
        total = time.perf_counter() - start
        transfer_end = next((t for t, phase in marks if phase == "verifying"), marks[-1][0])
        assert result.path.stat().st_size == SIZE
    mb = SIZE / 1e6
    print(f"{mb:.0f} MB: transfer {mb / (transfer_end - start):.0f} MB/s, whole call with SHA256 {mb / total:.0f} MB/s "
          f"({total:.2f} s, {len(marks)} progress reports)")


if __name__ == "__main__":
    main()
