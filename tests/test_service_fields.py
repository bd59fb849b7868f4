"""The service's one builder, one check, one error table and one saver (issue 29), on their own:
no server, no window, no model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.core.errors import BAD_INPUT, CANCELLED, FAILED, MODEL_MISSING, OUT_OF_MEMORY, UNAVAILABLE
from app.core.guides import ControlUnit, SoftInpainting
from app.core.params import GenerationParams, ParamError
from app.core.records import GenerationRecord
from app.inference.engine import Cancelled
from app.inference.errors import GpuOutOfMemory, ModelLoadError
from app.inference.registry import CLASSICAL_CAPABILITIES, DIFFUSION_NOMINAL, RESTORATION_CAPABILITIES, nominal_capabilities
from app.inference.remote import RemoteGenerationError, ServerUnreachable
from app.server.jobs import JobStore
from app.service.errors import OUTCOMES, kind_of, outcome
from app.service.fields import PARAMS, FieldError, FrontEnd, build, check

FRONT = FrontEnd("shape", {"steps": "num_steps", "controls": "control_units", "soft_inpainting": "soft"})


def test_build_coerces_fills_defaults_and_carries_the_guide_fields():
    params = build(FRONT, {"steps": 30.0, "mode": "img2img", "scheduler": "dpmpp_2m_karras", "seed": None,
                           "controls": [{"module": "canny", "weight": 0.5}], "soft_inpainting": True})
    assert params.steps == 30 and isinstance(params.steps, int)
    assert params.strength == 0.75  # the mode's default, not the dataclass's
    assert params.scheduler == "DPM++ 2M Karras" and params.seed == -1
    assert params.controls == (ControlUnit(module="canny", weight=0.5),) and params.soft_inpainting == SoftInpainting()
    assert build(FRONT, {"mode": "inpaint"}).strength == 1.0
    assert build(FRONT, {"prompt": "x"}, base=params).controls == params.controls  # a base keeps its fields


def test_build_refuses_a_wrong_type_in_the_front_ends_words_and_checks_no_range():
    with pytest.raises(FieldError) as err:
        build(FRONT, {"steps": "many"})
    assert (err.value.field, err.value.param) == ("num_steps", "steps")
    with pytest.raises(FieldError) as err:
        build(FRONT, {"controls": [{"module": "canny", "wieght": 1}]})
    assert err.value.field == "control_units[0].wieght" and err.value.param == "controls[0].wieght"
    assert build(FRONT, {"steps": 0}).steps == 0  # ranges are check's
    with pytest.raises(TypeError):
        build(FRONT, {"num_steps": 3})  # keys are GenerationParams fields, never a front end's names


def test_check_holds_every_rule_and_names_the_front_ends_field():
    with pytest.raises(FieldError, match="num_steps = 0 is not valid"):
        check(GenerationParams(prompt="x", steps=0), DIFFUSION_NOMINAL, FRONT)
    with pytest.raises(FieldError) as err:
        check(GenerationParams(prompt="  "), DIFFUSION_NOMINAL, FRONT)
    assert err.value.field == "prompt" and "required with a diffusion model" in err.value.allowed
    with pytest.raises(FieldError, match="scheduler"):  # unknown even where the method ignores it
        check(GenerationParams(scheduler="Euler b"), CLASSICAL_CAPABILITIES)
    with pytest.raises(FieldError, match="must be a number") as err:  # read even where the prompt is ignored
        check(GenerationParams(negative_prompt="x <lora:x:abc>"), CLASSICAL_CAPABILITIES, FRONT)
    assert err.value.field == "negative_prompt"
    with pytest.raises(ParamError, match="img2img needs a diffusion model"):
        check(GenerationParams(mode="img2img"), CLASSICAL_CAPABILITIES)
    for caps in (CLASSICAL_CAPABILITIES, RESTORATION_CAPABILITIES):  # prompt-free: no prompt needed, sampling reset
        fitted = check(GenerationParams(seed=7, steps=40, batch_size=3, prompt="ignored"), caps)
        assert (fitted.seed, fitted.steps, fitted.batch_size, fitted.prompt) == (0, 25, 1, "")
        assert caps.prompt_free
    assert not DIFFUSION_NOMINAL.prompt_free
    assert check(GenerationParams(prompt="x", scheduler="k_euler"), DIFFUSION_NOMINAL, PARAMS).scheduler == "Euler"


def test_nominal_capabilities_need_no_file_and_no_server():
    assert nominal_capabilities("builtin:telea") is CLASSICAL_CAPABILITIES
    assert nominal_capabilities("lama:/nowhere/big-lama.safetensors").kind == RESTORATION_CAPABILITIES.kind
    assert nominal_capabilities("/no/such/model").requires_prompt
    assert not nominal_capabilities("remote:http://127.0.0.1:9#m").requires_prompt  # its server decides


def test_one_table_gives_each_kind_its_exit_code_and_status():
    cases = [(ParamError("steps", 0, "1–150"), BAD_INPUT), (ModelLoadError("no model"), MODEL_MISSING),
             (GpuOutOfMemory("cuda", True), OUT_OF_MEMORY), (MemoryError(), OUT_OF_MEMORY), (Cancelled(), CANCELLED),
             (ServerUnreachable("gone"), UNAVAILABLE), (RemoteGenerationError("boom", OUT_OF_MEMORY), OUT_OF_MEMORY),
             (RuntimeError("out of memory"), FAILED)]  # a message is never read
    for exc, kind in cases:
        assert kind_of(exc) == kind, exc
        assert outcome(exc, "cli") == OUTCOMES[kind]["cli"] and outcome(exc, "http") == OUTCOMES[kind]["http"]
    assert [outcome(e, "cli") for e, _ in cases[:5]] == [2, 2, 1, 1, 130]
    assert [outcome(e, "http") for e, _ in cases[:5]] == [400, 400, 503, 503, 409]


def test_the_job_store_writes_all_of_a_runs_outputs_or_none(tmp_path):
    store = JobStore(tmp_path)
    job = store.create("openai", {})
    pixels = [np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)]
    record = GenerationRecord(params=GenerationParams(seed=5, batch_size=3), candidates=pixels, seeds=[5, 6, 7])
    (store.outputs_dir / f"{job.id}-2.png").mkdir()  # the last one cannot be written
    with pytest.raises(OSError) as err:
        store.save_outputs(job, record)
    assert err.value.filename.endswith(f"{job.id}-2.png")
    assert sorted(p.name for p in store.outputs_dir.iterdir()) == [f"{job.id}-2.png"]  # no partial set, no temp file
    assert job.outputs == []
    (store.outputs_dir / f"{job.id}-2.png").rmdir()
    store.save_outputs(job, record)
    assert job.outputs == [f"{job.id}-{k}.png" for k in range(3)] and job.seeds == [5, 6, 7]
    assert all(store.output_path(n) is not None for n in job.outputs)


def test_a_front_end_grows_a_field_by_naming_it():
    grown = FRONT.with_names(reference="ip_adapter")
    assert grown.of("reference.weight") == "ip_adapter.weight" and grown.of("steps") == "num_steps"
    assert dataclasses.replace(FRONT).names == FRONT.names  # FRONT itself unchanged
