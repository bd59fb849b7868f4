import pytest

from app.core.params import GenerationParams, ParamError


def test_defaults_are_valid():
    p = GenerationParams(prompt="a cat").validate()
    assert (p.steps, p.guidance, p.strength, p.seed, p.batch_size) == (25, 7.5, 1.0, -1, 1)


@pytest.mark.parametrize(
    "field,value",
    [("steps", 0), ("steps", 151), ("guidance", 31.0), ("strength", 0.0), ("seed", -2), ("seed", 2**64),
     ("batch_size", 9), ("width", 500), ("height", 4096), ("mask_blur", 65), ("padding", 300), ("mode", "x"), ("color_match", "sometimes")],
)
def test_invalid_value_names_field_value_and_range(field, value):
    with pytest.raises(ParamError) as err:
        GenerationParams(**{field: value}).validate()
    assert err.value.field == field
    assert repr(value) in str(err.value) and field in str(err.value)


def test_seed_resolution_and_batch_seeds():
    p = GenerationParams(seed=-1, batch_size=3).with_resolved_seed()
    assert 0 <= p.seed < 2**32
    assert p.batch_seeds() == [p.seed + i for i in range(3)] or p.seed > 2**32 - 3
    assert GenerationParams(seed=2**32 - 1, batch_size=2).batch_seeds() == [2**32 - 1, 2**32]  # 64-bit: no wrap
    assert GenerationParams(seed=2**64 - 1, batch_size=2).batch_seeds() == [2**64 - 1, 0]


def test_dict_round_trip_and_coercion():
    p = GenerationParams(prompt="x", seed=5, width=512, height=768)
    assert GenerationParams.from_dict(p.to_dict()) == p
    assert GenerationParams.from_dict({"steps": "30"}).steps == 30
    with pytest.raises(ParamError):
        GenerationParams.from_dict({"steps": 2.5})
