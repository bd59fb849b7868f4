"""Reference images (IP-Adapter) on the tiny model: a tiny adapter and CLIP vision encoder saved
in the models folder, found and loaded through the real loader, offline."""

import pickle

import numpy as np
import pytest

from app.core.guides import Reference
from app.core.params import GenerationParams
from app.inference.engine import BackendRequest
from app.inference.errors import ModelLoadError
from app.inference.registry import LoadOptions, load_backend
from tiny_adapters import adapter_state, build_image_encoder, save_adapter

SIZE = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_base_model):
    """A models folder with ipadapter/tiny-ip.safetensors, ControlNet/tiny-ip.bin (A1111's place,
    the original nested layout) and clip_vision/tiny-encoder/."""
    root = tmp_path_factory.mktemp("ref-models")
    state = adapter_state(tiny_base_model / "unet")
    save_adapter(state, root / "ipadapter" / "tiny-ip.safetensors")
    save_adapter(state, root / "ControlNet" / "tiny-ip-bin.bin")
    build_image_encoder(root / "clip_vision" / "tiny-encoder")
    return root


@pytest.fixture()
def backend(models, tiny_base_model, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(models))
    return load_backend(str(tiny_base_model), LoadOptions(device="cpu"))


def request(reference: Reference | None):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:48, 16:48] = 255
    look = np.zeros((40, 30, 3), np.uint8)
    look[:, :, 0] = 255  # any size: the encoder's processor resizes it
    params = GenerationParams(prompt="a stone wall", steps=2, guidance=1.0, scheduler="DDIM", seed=11,
                              reference=reference)
    return BackendRequest(image, mask, params, (11,), reference_image=look if reference else None)


def run(backend, req):
    return backend.generate(req, lambda *a: None, lambda: False)[0]


def test_weight_changes_the_image_and_zero_or_none_do_not(backend):
    plain = run(backend, request(None))
    guided = run(backend, request(Reference("tiny-ip", 1.0)))
    assert backend.references.active
    assert not np.array_equal(guided, plain)
    assert np.array_equal(run(backend, request(Reference("tiny-ip", 0.0))), plain)
    assert not backend.references.active
    assert np.array_equal(run(backend, request(None)), plain)  # taking it off restores the UNet exactly


def test_loaded_adapter_at_scale_zero_is_bit_exact_no_reference(backend):
    """Why weight 0 may take the adapter off: with it on at scale 0 the pixels are the same."""
    plain = run(backend, request(None))
    req = request(Reference("tiny-ip", 0.7))
    backend.references.apply(req.params.reference)
    pipe = backend.pipeline_for("inpaint")
    pipe.set_ip_adapter_scale(0.0)
    on_at_zero = backend._generate(pipe, req, lambda *a: None, lambda: False)[0]
    backend.references.unload()
    assert np.array_equal(on_at_zero, plain)


def test_nested_bin_in_a1111_controlnet_folder_loads_the_same_weights(backend, models):
    safetensors = run(backend, request(Reference("tiny-ip", 0.8)))
    from_bin = run(backend, request(Reference("tiny-ip-bin", 0.8)))
    assert backend.references.loaded.endswith("tiny-ip-bin.bin")
    assert np.array_equal(safetensors, from_bin)


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_missing_files_and_wrong_files_are_clear_errors(backend, models, tmp_path):
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps({"image_proj": Payload(), "ip_adapter": {}}))
    with pytest.raises(ModelLoadError, match="not a readable IP-Adapter"):
        run(backend, request(Reference(str(evil), 1.0)))
    with pytest.raises(ModelLoadError, match="not found"):
        run(backend, request(Reference("nowhere", 1.0)))
    other = save_adapter({"image_proj": {"x": __import__("torch").zeros(1)}, "ip_adapter": {}},
                         tmp_path / "empty.safetensors")
    with pytest.raises(ModelLoadError, match="not an IP-Adapter"):
        run(backend, request(Reference(str(other), 1.0)))
    assert np.array_equal(run(backend, request(None)), run(backend, request(None)))
