"""Mutation fuzzing of the image and project loaders: only their own errors may escape.

    python bench/fuzz_loaders.py                 # 20 000 image cases + 10 000 project cases
    python bench/fuzz_loaders.py --cases 200000 --seed 7

Deterministic for a given ``--seed``. Each case takes a valid seed file (PNG 8/16-bit, gray/RGB/
RGBA, JPEG, TIFF, WebP, BMP, GIF, and project files with history) and mutates it: bit flips,
random bytes, truncation, insertion, deletion, duplicated ranges, splices of two files, and —
for projects — structure-aware mutations that rewrite one member (a mutated PNG or manifest
value) inside a *valid* zip so the CRC check does not stop the case at the door.

A case passes when the loader returns a well-formed result or raises `ImageLoadError` /
`ProjectError`. Anything else (another exception, a malformed result) is a failure, printed with
the case's recipe so it can be replayed (``--replay KIND:SEED:INDEX``). Also counted: "nothing
lost" — the project file the fuzzer keeps on disk and saves over with atomic writes after every
accepted case must still load identically at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from app.core.imageio import ImageLoadError, encode_image, load_image_bytes  # noqa: E402
from app.storage.project import ProjectError, ProjectState, load_project, load_project_bytes, project_bytes, save_project  # noqa: E402


# --------------------------------------------------------------------------------------------
# seed corpus
# --------------------------------------------------------------------------------------------
def image_corpus() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    rgba16 = rng.integers(0, 65536, (12, 16, 4), dtype=np.uint16)
    gray16 = rng.integers(0, 65536, (12, 16), dtype=np.uint16)
    out = [
        ("rgb8.png", encode_image(rgb, "PNG")),
        ("rgba16.png", encode_image(rgba16, "PNG")),
        ("gray16.png", encode_image(gray16, "PNG")),
        ("gray8.png", encode_image(rgb[:, :, 0].copy(), "PNG")),
        ("rgb.jpg", encode_image(rgb, "JPEG")),
        ("rgb16.tif", encode_image(rgba16[:, :, :3].copy(), "TIFF")),
        ("rgb8.tif", encode_image(rgb, "TIFF")),
        ("rgb.webp", encode_image(rgb, "WEBP")),
    ]
    for fmt, name in (("BMP", "rgb.bmp"), ("GIF", "pal.gif")):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, fmt)
        out.append((name, buf.getvalue()))
    return out


def project_corpus() -> list[tuple[str, bytes]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from reliability_fixtures import make_state

    return [
        ("rgb8.inpaint", project_bytes(make_state(h=10, w=12, channels=3, generations=1))),
        ("rgba16.inpaint", project_bytes(make_state(h=12, w=14, channels=4, dtype=np.uint16, generations=2))),
        ("gray.inpaint", project_bytes(make_state(h=11, w=13, channels=1, generations=0, icc=False))),
    ]


# hostile seeds (issue 12): small files that once cost seconds and gigabytes; each must be refused
# from its header, and mutations of them must be too
def jpeg_claiming(width: int, height: int) -> bytes:
    """A ~630-byte baseline JPEG whose SOF0 header claims ``width`` × ``height``."""
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + (zlib.crc32(kind + body) & 0xFFFFFFFF).to_bytes(4, "big")


def png_claiming(width: int, height: int, idat_bytes: int = 100_000) -> bytes:
    """A valid-looking RGB PNG of ``width`` × ``height`` with a tiny, highly compressed IDAT."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    body = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * idat_bytes, 9))
    return b"\x89PNG\r\n\x1a\n" + body + _png_chunk(b"IEND", b"")


def project_with_references(count: int = 640_000) -> bytes:
    """A project whose generation names the current image ``count`` times (640,000: once 112 s, 1.6 GB)."""
    members = _zip_members(project_corpus()[0][1])
    manifest = json.loads(members["manifest.json"])
    manifest["generations"][0]["candidates"] = [manifest["files"]["current"]] * count
    members["manifest.json"] = json.dumps(manifest).encode()
    return _zip(members)


def hostile_image_corpus() -> list[tuple[str, bytes]]:
    return [("bomb-30000x29000.jpg", jpeg_claiming(30000, 29000)), ("bomb-29000x29000.png", png_claiming(29000, 29000))]


def hostile_project_corpus(references: int = 5000) -> list[tuple[str, bytes]]:
    """As fuzz seeds, 5000 references (over the 4096-image cap, cheap to mutate); the tests also
    load the full 640,000."""
    return [(f"refs-{references}.inpaint", project_with_references(references))]


# --------------------------------------------------------------------------------------------
# mutations
# --------------------------------------------------------------------------------------------
def _bitflip(rng: random.Random, data: bytearray) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return data


def _random_bytes(rng: random.Random, data: bytearray) -> bytearray:
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return data


def _interesting(rng: random.Random, data: bytearray) -> bytearray:
    """Overwrite 1/2/4 bytes with boundary values (0, 0xFF…, 0x7F…, 0x80…): sizes and lengths."""
    width = rng.choice([1, 2, 4])
    value = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]) & ((1 << 8 * width) - 1)
    i = rng.randrange(max(1, len(data) - width))
    data[i : i + width] = value.to_bytes(width, rng.choice(["big", "little"]))
    return data


def _truncate(rng: random.Random, data: bytearray) -> bytearray:
    return data[: rng.randrange(len(data))]


def _insert(rng: random.Random, data: bytearray) -> bytearray:
    i = rng.randrange(len(data) + 1)
    return data[:i] + bytearray(rng.randbytes(rng.randint(1, 64))) + data[i:]


def _delete(rng: random.Random, data: bytearray) -> bytearray:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 64) :]


def _duplicate(rng: random.Random, data: bytearray) -> bytearray:
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 256))
    k = rng.randrange(len(data) + 1)
    return data[:k] + data[i:j] + data[k:]


def _garbage(rng: random.Random, data: bytearray) -> bytearray:
    return bytearray(rng.randbytes(rng.randint(0, 512)))


BYTE_MUTATIONS: dict[str, Callable[[random.Random, bytearray], bytearray]] = {
    "bitflip": _bitflip,
    "random_bytes": _random_bytes,
    "interesting": _interesting,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "duplicate": _duplicate,
    "garbage": _garbage,
}


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


JSON_VALUES = [None, True, False, 0, -1, 1, 2**31, 2**64, -(2**63), 1e308, -1e308, 0.5, float("nan"), float("inf"), "", "x" * 300,
               "../../etc/passwd", "/abs.png", "mask.png", [], [1, 2, 3, 4], {}, {"a": 1}, [[0, 0, 1, 1]], 10**400]


def _mutate_json(rng: random.Random, value, depth: int = 0):
    """Replace, delete or add one value somewhere in a JSON document."""
    if isinstance(value, dict) and value and depth < 6 and rng.random() < 0.8:
        key = rng.choice(list(value))
        op = rng.random()
        if op < 0.15:
            value.pop(key)
        elif op < 0.25:
            value[rng.choice(["extra", key + "_", "format_version", "files", "image"])] = rng.choice(JSON_VALUES)
        else:
            value[key] = _mutate_json(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and depth < 6 and rng.random() < 0.8:
        i = rng.randrange(len(value))
        op = rng.random()
        if op < 0.15:
            value.pop(i)
        elif op < 0.3:
            value.append(value[i])
        else:
            value[i] = _mutate_json(rng, value[i], depth + 1)
        return value
    return rng.choice(JSON_VALUES)


def mutate_project_member(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Structure-aware: keep a valid zip, mutate the manifest or one member's bytes."""
    members = _zip_members(data)
    if rng.random() < 0.5:
        manifest = json.loads(members["manifest.json"])
        members["manifest.json"] = json.dumps(_mutate_json(rng, manifest)).encode()
        return "manifest", _zip(members)
    name = rng.choice(sorted(members))
    if rng.random() < 0.2:  # a hostile name next to the real members
        members[rng.choice(["../evil.png", "/abs/evil", "a/../../b", "C:\\x", "ok/./x", "x\x00y"])] = b"evil"
        return "evil_name", _zip(members)
    op = rng.choice(list(BYTE_MUTATIONS))
    body = bytearray(members[name])
    members[name] = bytes(BYTE_MUTATIONS[op](rng, body)) if body else b""
    return f"member:{name}:{op}", _zip(members)


def mutate(rng: random.Random, data: bytes, corpus: list[tuple[str, bytes]], *, project: bool) -> tuple[str, bytes]:
    roll = rng.random()
    if project and roll < 0.45:
        return mutate_project_member(rng, data)
    if roll < 0.52:
        other = rng.choice(corpus)[1]
        i, j = rng.randrange(len(data)), rng.randrange(len(other))
        return "splice", data[:i] + other[j:]
    names = list(BYTE_MUTATIONS)
    ops = [rng.choice(names) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    out = bytearray(data)
    for op in ops:
        if not out:
            break
        out = BYTE_MUTATIONS[op](rng, out)
    return "+".join(ops), bytes(out)


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------
def check_image(data: bytes, name: str) -> str:
    """'ok' / 'rejected'; raises on a contract violation."""
    try:
        loaded = load_image_bytes(data, name)
    except ImageLoadError as exc:
        if not str(exc) or "\n" in str(exc):
            raise AssertionError(f"ImageLoadError message is not one line: {exc!r}") from None
        return "rejected"
    px = loaded.pixels
    assert isinstance(px, np.ndarray) and px.dtype in (np.uint8, np.uint16), (px.dtype,)
    assert px.ndim == 2 or (px.ndim == 3 and px.shape[2] in (3, 4)), px.shape
    assert px.shape[0] > 0 and px.shape[1] > 0
    return "ok"


def check_project(data: bytes, name: str) -> str:
    try:
        state = load_project_bytes(data, name)
    except ProjectError as exc:
        if exc.unexpected:  # the last-resort net caught something no check expected: a bug
            raise exc.__cause__  # type: ignore[misc]
        if not str(exc) or "\n" in str(exc):
            raise AssertionError(f"ProjectError message is not one line: {exc!r}") from None
        return "rejected"
    assert isinstance(state, ProjectState)
    assert state.current.shape == state.original.shape and state.current.dtype == state.original.dtype
    assert state.mask.shape == state.current.shape[:2] and state.mask.dtype == np.uint8
    for g in state.generations:
        for c in g.candidates:
            assert c.shape == state.current.shape and c.dtype == state.current.dtype
    state.params.validate()
    return "ok"


# --------------------------------------------------------------------------------------------
# runner
# --------------------------------------------------------------------------------------------
#: A load slower than this on a tiny file is a resource problem (reported, not a failure).
SLOW_S = 0.5


class Report:
    def __init__(self) -> None:
        self.cases = Counter()
        self.outcomes = Counter()
        self.failures: list[str] = []
        self.slow: list[tuple[float, str]] = []  # (seconds, case id): loads slower than SLOW_S
        self.seconds = 0.0
        self.nothing_lost = None

    def summary(self) -> str:
        lines = [f"{kind}: {n} cases, {self.outcomes[kind, 'ok']} loaded, {self.outcomes[kind, 'rejected']} rejected "
                 f"with a clear error, {self.outcomes[kind, 'FAIL']} failures" for kind, n in sorted(self.cases.items())]
        lines.append(f"total: {sum(self.cases.values())} cases in {self.seconds:.1f} s, {len(self.failures)} failures")
        lines.append(f"slow (> {SLOW_S:g} s): {len(self.slow)}" + "".join(f"\n  {s:.2f} s {case}" for s, case in sorted(self.slow)[-10:]))
        if self.nothing_lost is not None:
            lines.append(f"nothing lost: {self.nothing_lost}")
        return "\n".join(lines)


def run_case(kind: str, seed: int, index: int, corpus: list[tuple[str, bytes]]) -> tuple[str, str, bytes, str]:
    """Deterministic case ``index`` of ``kind`` (image|project) under ``seed``: (recipe, name, data, outcome)."""
    rng = random.Random(f"{kind}:{seed}:{index}")
    name, base = rng.choice(corpus)
    recipe, data = mutate(rng, base, corpus, project=kind == "project")
    check = check_project if kind == "project" else check_image
    return f"{name} {recipe}", name, data, check(data, name)


def fuzz(image_cases: int, project_cases: int, seed: int = 0, *, keep_failures: Path | None = None,
         log: Callable[[str], None] | None = None) -> Report:
    report = Report()
    corpora = {"image": image_corpus() + hostile_image_corpus(), "project": project_corpus() + hostile_project_corpus()}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # "nothing lost": a real project on disk, re-saved atomically after accepted cases
        keeper = Path(tmp) / "keeper.inpaint"
        keeper_state = load_project_bytes(corpora["project"][0][1])
        save_project(keeper, keeper_state)
        for kind, total in (("image", image_cases), ("project", project_cases)):
            for i in range(total):
                report.cases[kind] += 1
                started = time.perf_counter()
                try:
                    recipe, name, data, outcome = run_case(kind, seed, i, corpora[kind])
                    took = time.perf_counter() - started
                    if took > SLOW_S:
                        report.slow.append((took, f"{kind}:{seed}:{i} {recipe}"))
                except Exception as exc:  # noqa: BLE001 - this is what the fuzzer is looking for
                    outcome = "FAIL"
                    tb = traceback.format_exc(limit=6)
                    report.failures.append(f"{kind}:{seed}:{i} {type(exc).__name__}: {exc}\n{tb}")
                    if keep_failures is not None:
                        rng = random.Random(f"{kind}:{seed}:{i}")
                        name, base = rng.choice(corpora[kind])
                        _, data = mutate(rng, base, corpora[kind], project=kind == "project")
                        keep_failures.mkdir(parents=True, exist_ok=True)
                        (keep_failures / f"{kind}-{seed}-{i}-{name}").write_bytes(data)
                    if log:
                        log(report.failures[-1])
                report.outcomes[kind, outcome] += 1
                if kind == "project" and outcome == "ok" and i % 50 == 0:
                    save_project(keeper, keeper_state)
        again = load_project(keeper)
        report.nothing_lost = bool(np.array_equal(again.current, keeper_state.current)
                                   and np.array_equal(again.mask, keeper_state.mask) and again.params == keeper_state.params)
    report.seconds = time.perf_counter() - t0
    return report


def quiet() -> None:
    """Decoders complain on stderr about every broken file (that is the point here): mute them."""
    import os
    import warnings

    import cv2

    warnings.simplefilter("ignore")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libpng writes its errors straight to file descriptor 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=30000, help="total cases (2/3 images, 1/3 projects)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write failing inputs to this folder")
    parser.add_argument("--replay", help="KIND:SEED:INDEX — run one case and show its traceback")
    parser.add_argument("--verbose", action="store_true", help="keep libpng/OpenCV/Pillow chatter on stderr")
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet()
    if args.replay:
        kind, seed, index = args.replay.split(":")
        corpus = image_corpus() + hostile_image_corpus() if kind == "image" else project_corpus() + hostile_project_corpus()
        recipe, _name, data, outcome = run_case(kind, int(seed), int(index), corpus)
        print(f"{recipe}: {outcome} ({len(data)} bytes)")
        return 0
    n_images = args.cases * 2 // 3
    report = fuzz(n_images, args.cases - n_images, args.seed, keep_failures=args.keep, log=print)
    print(report.summary(), flush=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
