"""Property-based tests (hypothesis): mask ops, compositing, params, PNG metadata, projects.

Deterministic and fast by default (``derandomize``, 60 examples each); for a deeper run set
``INPAINT_STUDIO_HYPOTHESIS_EXAMPLES=2000``.
"""

from __future__ import annotations

import json
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reliability_fixtures import assert_states_equal, srgb_icc
from scipy import ndimage

from app.core.errors import NothingToInpaintFromError
from app.core.sdmeta.a1111 import parse_fields
from app.core import compositing, maskops, metadata
from app.core.records import GenerationRecord
from app.core.geometry import Bounds
from app.core.imageio import load_image_bytes
from app.inference.classical import ClassicalBackend
from app.inference.engine import Engine, Job
from app.core.schedulers import SCHEDULER_NAMES
from app.core.params import CLASSICAL_MODELS, INPAINT_AREAS, MASKED_CONTENT, MODES, SEED_MAX, GenerationParams, ParamError
from app.storage.project import ProjectState, load_project_bytes, project_bytes

EXAMPLES = int(os.environ.get("INPAINT_STUDIO_HYPOTHESIS_EXAMPLES", "60"))
FAST = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=max(10, EXAMPLES // 3))


# -- strategies --------------------------------------------------------------------------------------
@st.composite
def binary_masks(draw, max_side: int = 40) -> np.ndarray:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    mode = draw(st.sampled_from(["random", "rects"]))
    if mode == "random":
        density = draw(st.floats(0.0, 1.0))
        seed = draw(st.integers(0, 2**31))
        bits = np.random.default_rng(seed).random((h, w)) < density
        return np.where(bits, 255, 0).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(0, 4))):
        x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        mask[y : y + draw(st.integers(1, h)), x : x + draw(st.integers(1, w))] = 255
    return mask


@st.composite
def pixel_arrays(draw, max_side: int = 32, min_side: int = 1) -> np.ndarray:
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    channels = draw(st.sampled_from([1, 3, 4]))
    h, w = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    seed = draw(st.integers(0, 2**31))
    hi = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, hi + 1, shape, dtype=dtype)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
sizes = st.none() | st.integers(32, 256).map(lambda v: v * 8)


@st.composite
def valid_params(draw) -> GenerationParams:
    both = draw(sizes)
    return GenerationParams(
        prompt=draw(text),
        negative_prompt=draw(text),
        mode=draw(st.sampled_from(MODES)),
        model=draw(st.sampled_from(["builtin:telea", "builtin:ns", "/models/sd15-inpainting", "runwayml/stable-diffusion-inpainting"])),
        scheduler=draw(st.sampled_from(SCHEDULER_NAMES)),
        steps=draw(st.integers(1, 150)),
        guidance=draw(st.floats(0.0, 30.0, allow_nan=False)),
        strength=draw(st.floats(0.01, 1.0, allow_nan=False)),
        seed=draw(st.integers(-1, SEED_MAX)),
        batch_size=draw(st.integers(1, 8)),
        width=both,
        height=None if both is None else draw(st.integers(32, 256).map(lambda v: v * 8)),
        mask_blur=draw(st.integers(0, 64)),
        mask_grow=draw(st.integers(0, 64)),
        inpaint_area=draw(st.sampled_from(INPAINT_AREAS)),
        padding=draw(st.integers(0, 256)),
        masked_content=draw(st.sampled_from(MASKED_CONTENT)),
    ).validate()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
field_names = st.sampled_from(list(GenerationParams.__dataclass_fields__)) | st.text(max_size=10)


# -- mask operations ----------------------------------------------------------------------------------
@FAST
@given(binary_masks(), st.integers(0, 12))
def test_grow_and_shrink_bound_the_mask(mask, r):
    grown, shrunk = maskops.grow(mask, r), maskops.shrink(mask, r)
    on = mask == 255
    assert (grown[on] == 255).all() and not (shrunk[~on] == 255).any()  # grow ⊇ mask ⊇ shrink
    closed = maskops.shrink(grown, r)  # closing is extensive, opening anti-extensive
    opened = maskops.grow(shrunk, r)
    assert (closed[on] == 255).all() and not (opened[~on] == 255).any()
    assert maskops.grow(mask, -r).tolist() == shrunk.tolist()
    if r and on.any():  # grow reaches no farther than r (Euclidean)
        dist = ndimage.distance_transform_edt(~on)
        assert not (grown[dist > r + 0.5] == 255).any()


@FAST
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40)))
def test_invert_is_an_involution(mask):
    inverted = maskops.invert(mask)
    assert (inverted.astype(int) == 255 - mask.astype(int)).all()
    assert np.array_equal(maskops.invert(inverted), mask)


@FAST
@given(binary_masks(), st.integers(0, 16))
def test_feather_is_in_unit_range_one_on_mask_zero_far_away(mask, blur):
    w = maskops.feather(mask, blur)
    assert w.dtype == np.float32 and w.shape == mask.shape
    assert (w >= 0).all() and (w <= 1).all()
    on = mask >= 128
    assert (w[on] == 1).all()
    if on.any():
        dist = ndimage.distance_transform_edt(~on)
        assert (w[dist > blur + 1] == 0).all()
    else:
        assert not w.any()


@FAST
@given(binary_masks(), st.integers(0, 10), st.data())
def test_windowed_feather_equals_the_whole_image_feather(mask, blur, data):
    h, w = mask.shape
    x, y = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    crop = Bounds(x, y, data.draw(st.integers(1, w - x)), data.draw(st.integers(1, h - y)))
    assert np.array_equal(maskops.feather(mask, blur, crop), maskops.feather_full(mask, blur)[crop.slices])


# -- compositing ----------------------------------------------------------------------------------------
@FAST
@given(pixel_arrays(), st.data())
def test_composite_leaves_weight_zero_pixels_and_alpha_bit_identical(target, data):
    h, w = target.shape[:2]
    x, y = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    crop = Bounds(x, y, data.draw(st.integers(1, w - x)), data.draw(st.integers(1, h - y)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    weights = rng.random((crop.height, crop.width)).astype(np.float32)
    weights[rng.random(weights.shape) < 0.5] = 0.0
    gen = rng.integers(0, 256, (crop.height, crop.width, 3), dtype=np.uint8)
    before = target.copy()
    compositing.composite_into(target, gen, crop, weights)
    full_w = np.zeros((h, w), np.float32)
    full_w[crop.slices] = weights
    untouched = full_w == 0
    assert np.array_equal(target[untouched], before[untouched])
    if target.ndim == 3 and target.shape[2] == 4:
        assert np.array_equal(target[:, :, 3], before[:, :, 3])
    assert target.dtype == before.dtype and target.shape == before.shape


@SLOW
@given(pixel_arrays(max_side=48, min_side=4), st.data())
def test_engine_output_is_bit_identical_outside_the_feathered_mask(image, data):
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    x, y = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    mask[y : y + data.draw(st.integers(1, h)), x : x + data.draw(st.integers(1, w))] = 255
    params = GenerationParams(
        seed=1, mask_blur=data.draw(st.integers(0, 8)), mask_grow=data.draw(st.integers(0, 4)),
        padding=data.draw(st.integers(0, 16)), inpaint_area=data.draw(st.sampled_from(INPAINT_AREAS)),
    )
    hard = maskops.grow(mask, params.mask_grow)
    engine = Engine(ClassicalBackend())
    try:
        result = engine.run(Job(params, image.copy(), mask))
    except NothingToInpaintFromError:
        # Only when some region the method works on has no unmasked pixel to copy from.
        crops = [plan.crop for plan in engine.plan(Job(params, image, mask))[2]]
        assert any(hard[c.slices].min() >= maskops.THRESHOLD for c in crops)
        return
    outside = maskops.feather_full(hard, params.mask_blur) == 0
    (cand,) = result.candidates
    assert cand.image.dtype == image.dtype and cand.image.shape == image.shape
    assert np.array_equal(cand.image[outside], image[outside])


# -- parameters ------------------------------------------------------------------------------------------
@FAST
@given(valid_params())
def test_params_round_trip_through_dict_and_json(params):
    assert GenerationParams.from_dict(params.to_dict()) == params
    assert GenerationParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params


@FAST
@given(st.dictionaries(field_names, json_values, max_size=8))
def test_any_dict_gives_valid_params_or_a_param_error(data):
    try:
        params = GenerationParams.from_dict(data)
    except ParamError as exc:
        assert isinstance(exc.field, str) and exc.field and str(exc)
    else:
        assert params.validate() is params


@FAST
@given(json_values)
def test_non_dict_params_are_a_param_error(value):
    if isinstance(value, dict):
        return
    try:
        GenerationParams.from_dict(value)
        raise AssertionError("accepted a non-dict")
    except ParamError as exc:
        assert exc.field == "parameters"


# -- PNG metadata ------------------------------------------------------------------------------------------
one_line = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40).map(str.strip)


@FAST
@given(valid_params())
def test_png_json_chunk_round_trips_all_params(params):
    from app.core.imageio import encode_image

    data = encode_image(np.zeros((8, 8, 3), np.uint8), "PNG", params=params)
    assert load_image_bytes(data, "x.png").params == params


@FAST
@given(valid_params(), one_line, one_line)
def test_a1111_text_round_trips_what_it_carries(params, prompt, negative):
    params = params.replace(prompt=prompt, negative_prompt=negative)
    text = metadata.format_a1111(params, 512, 512)
    back = metadata.parse_a1111(text)
    assert (back.prompt, back.negative_prompt) == (params.prompt, params.negative_prompt)
    if params.model in CLASSICAL_MODELS:  # no sampling: the text carries none of its fields
        assert not {"Seed", "Steps", "Sampler", "CFG scale", "Denoising strength"} & set(parse_fields(text))
        return
    assert (back.steps, back.seed, back.scheduler) == (params.steps, params.seed, params.scheduler)
    assert abs(back.guidance - params.guidance) < 1e-9 and abs(back.strength - params.strength) < 1e-9
    if params.mode == "inpaint":
        assert (back.mode, back.mask_blur) == ("inpaint", params.mask_blur)
        assert back.inpaint_area == params.inpaint_area
        if params.inpaint_area == "masked":
            assert back.padding == params.padding


@FAST
@given(st.text(max_size=300))
def test_a1111_parser_never_raises_on_any_text(text):
    params = metadata.parse_a1111(text)
    assert params.validate() is params


# -- projects ----------------------------------------------------------------------------------------------
@SLOW
@given(pixel_arrays(max_side=24), valid_params(), st.integers(0, 2), st.booleans(), st.data())
def test_project_round_trip(current, params, n_generations, with_icc, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    hi = 65535 if current.dtype == np.uint16 else 255
    original = rng.integers(0, hi + 1, current.shape, dtype=current.dtype)
    mask = rng.integers(0, 256, current.shape[:2], dtype=np.uint8)
    gens = []
    for g in range(n_generations):
        cands = [rng.integers(0, hi + 1, current.shape, dtype=current.dtype) for _ in range(data.draw(st.integers(0, 2)))]
        gens.append(GenerationRecord(
            params=params.with_resolved_seed(), candidates=cands, seeds=[data.draw(st.integers(0, SEED_MAX))],
            regions=[Bounds(0, 0, current.shape[1], current.shape[0])], backend="b", elapsed_s=data.draw(st.floats(0, 1e6)),
            created=data.draw(st.floats(0, 2e9)), applied=0 if cands and data.draw(st.booleans()) else None,
        ))
    state = ProjectState(original, current, mask, params, gens, srgb_icc() if with_icc else None,
                         data.draw(st.none() | text))
    assert_states_equal(state, load_project_bytes(project_bytes(state)))

