"""Turning an engine `Result` into history records and per-candidate parameters.

One rule for candidates, used by every front end: candidate k of a batch run with seed s is
recorded as seed s+k, batch 1, with exactly the parameters that regenerate it (the diffusion
backend runs each batch item as its own call, so this reproduces its pixels bit for bit).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from app.core.params import GenerationParams
from app.core.records import GenerationRecord


def record_from_result(result) -> GenerationRecord:
    """The history record of a finished run (`app.inference.engine.Result`): its params as run
    (seed resolved, the batch size asked for), every candidate with its own seed."""
    return GenerationRecord(
        params=result.params,
        candidates=[c.image for c in result.candidates],
        seeds=[c.seed for c in result.candidates],
        regions=list(result.regions),
        backend=result.backend,
        elapsed_s=result.elapsed_s,
    )


def candidate_params(record: GenerationRecord, index: int) -> GenerationParams:
    """The parameters that regenerate candidate ``index`` of ``record`` alone: seed s+k, batch 1."""
    if not 0 <= index < len(record.seeds):
        raise IndexError(f"candidate {index} of a generation with {len(record.seeds)} candidates")
    return record.params.replace(seed=record.seeds[index], batch_size=1)


def save_candidate(path: str | os.PathLike[str], record: GenerationRecord, index: int,
                   icc_profile: bytes | None = None, fast_png: bool = False) -> Path:
    """Write candidate ``index`` atomically with the metadata that regenerates it alone
    (`candidate_params`); the format follows the extension (PNG: A1111 text + our JSON chunk;
    ``fast_png``: see `app.core.imageio.save_image`)."""
    from app.core.imageio import save_image

    return save_image(path, record.candidates[index], params=candidate_params(record, index), icc_profile=icc_profile,
                      fast_png=fast_png)


def save_outputs(paths: Sequence[str | os.PathLike[str]], record: GenerationRecord, *,
                 icc_profile: bytes | None = None, fast_png: bool = False) -> list[Path]:
    """Write candidate k of ``record`` to ``paths[k]``, every one or none (`atomic_write_all`):
    the CLI's files and the server's outputs of one run, each with the metadata that regenerates
    it alone (`candidate_params`). Raises the first `OSError` (or encoding `ValueError`) with
    nothing written."""
    from app.core.atomic import atomic_write_all
    import numpy as np

    from app.core.imageio import SAVE_FORMATS, encode_image

    if len(paths) != len(record.candidates):
        raise ValueError(f"{len(paths)} paths for {len(record.candidates)} candidates")

    def writer(path: Path, index: int):
        fmt = SAVE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot save {path.name}: use one of the extensions {', '.join(sorted(SAVE_FORMATS))}")
        return lambda fh: fh.write(encode_image(np.ascontiguousarray(record.candidates[index]), fmt,
                                                params=candidate_params(record, index), icc_profile=icc_profile,
                                                fast_png=fast_png))

    dests = [Path(p) for p in paths]
    atomic_write_all([(dest, writer(dest, k)) for k, dest in enumerate(dests)])
    return dests
