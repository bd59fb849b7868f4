"""A short deterministic mutation fuzz of the image and project loaders (the long run is
``bench/fuzz_loaders.py``): only ImageLoadError / ProjectError may escape, results are well formed,
and a project saved on disk meanwhile is never damaged."""

from __future__ import annotations

import importlib.util
import random
import time
import warnings
from pathlib import Path

import cv2
import pytest

from app.storage.project import ProjectError, load_project_bytes

_spec = importlib.util.spec_from_file_location("fuzz_loaders", Path(__file__).resolve().parent.parent / "bench" / "fuzz_loaders.py")
fuzz_loaders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_loaders)

IMAGE_CASES, PROJECT_CASES = 1500, 700


@pytest.fixture(autouse=True)
def _quiet_decoders():
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    cv2.utils.logging.setLogLevel(level)


def test_fuzzed_images_and_projects_only_raise_their_own_errors():
    report = fuzz_loaders.fuzz(IMAGE_CASES, PROJECT_CASES, seed=2026)
    assert report.failures == [], report.failures[0]
    assert report.cases["image"] == IMAGE_CASES and report.cases["project"] == PROJECT_CASES
    for kind in ("image", "project"):  # the mutations reach both outcomes: neither trivial nor hopeless
        assert report.outcomes[kind, "ok"] > 0 and report.outcomes[kind, "rejected"] > report.outcomes[kind, "ok"]
    assert report.nothing_lost is True


def test_every_mutation_kind_is_exercised_and_deterministic():
    corpus = fuzz_loaders.project_corpus()
    seen = set()
    for i in range(300):
        rng = random.Random(f"project:1:{i}")
        _, base = rng.choice(corpus)
        recipe, _ = fuzz_loaders.mutate(rng, base, corpus, project=True)
        seen.update(part.split(":")[0] for part in recipe.split("+"))
    assert {"manifest", "member", "evil_name", "splice", "bitflip", "truncate", "garbage"} <= seen
    again = [fuzz_loaders.run_case("image", 5, i, fuzz_loaders.image_corpus())[2] for i in range(20)]
    assert again == [fuzz_loaders.run_case("image", 5, i, fuzz_loaders.image_corpus())[2] for i in range(20)]


def test_unexpected_errors_are_caught_for_the_user_but_flagged_for_the_fuzzer(monkeypatch):
    import app.storage.project as project

    data = fuzz_loaders.project_corpus()[0][1]

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(project, "read_record", broken)
    with pytest.raises(ProjectError, match="could not be read") as info:
        load_project_bytes(data)
    assert info.value.unexpected
    with pytest.raises(KeyError):
        fuzz_loaders.check_project(data, "p.inpaint")


@pytest.mark.parametrize("name, data", fuzz_loaders.hostile_image_corpus() + [
    ("refs-640000.inpaint", fuzz_loaders.project_with_references(640_000))] + fuzz_loaders.hostile_project_corpus())
def test_hostile_seeds_of_issue_12_are_refused_at_once(name, data):
    """The header bombs and the 640,000-reference project are fuzz seeds; unmutated, each is refused
    with its own error in well under a second."""
    check = fuzz_loaders.check_project if name.endswith(".inpaint") else fuzz_loaders.check_image
    t0 = time.perf_counter()
    assert check(data, name) == "rejected"
    assert time.perf_counter() - t0 < 1.0
