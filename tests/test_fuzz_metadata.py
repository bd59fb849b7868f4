"""Fuzzing the readers of foreign metadata text (A1111 infotext, ComfyUI graphs, NovelAI, the
keyed-JSON tools) with a time budget per input: each text is read within `BUDGET_S`, never
raises, and never recurses out of the stack (issue 32: 100 KB of "a a a …" took 72 s; JSON
nested 100,000 deep, a self-linked seed and a 3,000-node chain raised RecursionError)."""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.sdmeta import MetadataReport, read_texts

#: Seconds one input may take, generous for a loaded 2-core machine: the quadratic parser took
#: seconds on 20 KB, the linear one takes milliseconds on 200 KB.
BUDGET_S = 1.0
EXAMPLES = int(os.environ.get("INPAINT_STUDIO_HYPOTHESIS_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_A1111_PIECES = ["a ", "Steps: 20", ", ", "Sampler: Euler a", "Seed: ", "12345", "CFG scale: 7", ":", '"', "\\",
                 "\n", "Negative prompt: ", " ", "Size: 512x512", "Lora hashes: \"x: 1, y: 2\"", "{", "[", "é", "\x1b[2J",
                 "word-with-dash/slash ", "\r\n", ",,,,", "Model: foo"]
_JSON_PIECES = ['{"', '"', ":", ",", "[", "]", "{", "}", '"class_type": "KSampler"', '"inputs": {', '"seed": ["1", 0]',
                '"1": ', "1", "null", "true", '"text": "a cat"', "\\", '"steps": 5']


@st.composite
def texts(draw, pieces):
    """Text built from format-shaped pieces, some repeated thousands of times (the long runs a
    quadratic parser chokes on)."""
    parts = draw(st.lists(st.tuples(st.sampled_from(pieces), st.sampled_from([1, 1, 1, 2, 50, 3000])), max_size=40))
    return "".join(piece * times for piece, times in parts)


def _read_within_budget(chunks: dict[str, str]) -> MetadataReport:
    start = time.perf_counter()
    report = read_texts(chunks)
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"{elapsed:.2f} s for {sum(map(len, chunks.values()))} characters"
    assert isinstance(report, MetadataReport)
    json.dumps(report.fields, default=str)  # whatever was read can be printed (no over-deep value)
    return report


@FUZZ
@given(text=texts(_A1111_PIECES), key=st.sampled_from(["parameters", "UserComment", "Comment", "Dream"]))
def test_a1111_like_text_is_read_in_linear_time(text, key):
    _read_within_budget({key: text})


@FUZZ
@given(text=texts(_JSON_PIECES), key=st.sampled_from(["prompt", "workflow", "Comment", "parameters", "inpaint-studio"]))
def test_json_like_text_is_read_in_linear_time(text, key):
    _read_within_budget({key: text})


@FUZZ
@given(size=st.integers(1, 3000), links=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)), max_size=200))
def test_any_comfyui_graph_shape_is_read_in_time(size, links):
    """Chains, cycles and self-links between nodes of a random graph."""
    graph = {str(i): {"class_type": "Node", "inputs": {"seed": [str(i + 1), 0], "positive": [str(i + 1), 0]}}
             for i in range(size)}
    for src, dst in links:
        graph.setdefault(str(src), {"class_type": "KSampler", "inputs": {}})["inputs"].update(
            {"seed": [str(dst), 0], "steps": 5, "latent_image": [str(dst), 0]})
    graph["0"] = {"class_type": "KSampler", "inputs": {"seed": ["0", 0], "steps": ["1", 0], "positive": ["0", 0]}}
    _read_within_budget({"prompt": json.dumps(graph)})


@pytest.mark.parametrize("chunks", [
    {"parameters": "p\nSteps: 20, Sampler: Euler, Seed: 1, " + "a " * 50_000},  # 100 KB: was 72 s
    {"UserComment": "a " * 30_000},  # 60 KB EXIF comment: was 24 s
    {"parameters": " " * 200_000 + "Steps: 1"},
    {"prompt": '{"a":' * 100_000 + "1" + "}" * 100_000},  # RecursionError
    {"inpaint-studio": "[" * 100_000 + "]" * 100_000},
    {"Comment": '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}"},  # NovelAI
    {"prompt": json.dumps({"5": {"class_type": "KSampler", "inputs": {"seed": ["5", 0], "steps": 20, "cfg": 7,
                                                                       "positive": ["5", 0]}}})},  # self-linked seed
    {"prompt": json.dumps({**{str(i): {"class_type": "Int", "inputs": {"seed": [str(i + 1), 0]}} for i in range(1, 3000)},
                           "0": {"class_type": "KSampler", "inputs": {"seed": ["1", 0], "steps": 20}}})},  # chain
    {"parameters": json.dumps({"resolution": "(" * 100_000, "prompt": "x"})},  # Fooocus' size field
    {"Dream": '"a cat" -s 20 ' + "x " * 500_000},  # InvokeAI 2: shlex took 0.8 s per MB
])
def test_hostile_texts_of_issue_32_are_read_at_once(chunks):
    report = _read_within_budget(chunks)
    assert report.format in ("none", "AUTOMATIC1111", "ComfyUI", "NovelAI", "Inpaint Studio", "Fooocus", "SwarmUI", "InvokeAI")


def test_the_long_a1111_line_still_recalls_its_parameters():
    report = _read_within_budget({"parameters": "a cat\nSteps: 20, Sampler: Euler, Seed: 7, CFG scale: 5, " + "x" * 100_000})
    assert (report.params.steps, report.params.seed, report.params.prompt) == (20, 7, "a cat")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_value_is_left_out_and_the_rest_recalled(value):
    """A note said "set to nan" while the fallback silently dropped every recalled setting."""
    report = _read_within_budget({"parameters": f"a cat\nSteps: 30, Sampler: Euler, Seed: 9, CFG scale: {value}"})
    assert (report.params.steps, report.params.seed) == (30, 9)
    assert "steps" in report.fields_set and "guidance" not in report.fields_set
    assert any("not a finite number" in n for n in report.notes)
