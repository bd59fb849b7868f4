"""Select by click (SAM): discovery, the missing-model message, click → mask plumbing on a tiny
random-weight SamModel loaded through the real loader, one embedding per image."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.inference import segment
from app.inference.errors import ModelLoadError
from tinysam import build_tiny_sam


@pytest.fixture(scope="module")
def sam_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_sam(root / "sam" / "tiny-sam")
    (root / "sam" / "not-sam").mkdir()
    (root / "sam" / "not-sam" / "config.json").write_text('{"model_type": "clip"}')
    return root


@pytest.fixture
def models_env(sam_models, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(sam_models))
    return sam_models


def test_discovery_finds_only_sam_folders(models_env):
    assert segment.find_sam_models() == [models_env / "sam" / "tiny-sam"]
    assert segment.default_sam_model() == models_env / "sam" / "tiny-sam"


def test_no_model_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path))
    with pytest.raises(segment.SamNotInstalledError, match="needs a Segment Anything model.*sam"):
        segment.ClickSegmenter()


def test_broken_model_folder_message(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "sam"}')
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        segment.ClickSegmenter(tmp_path).load()


def test_click_gives_an_image_sized_mask_and_one_embedding_per_image(models_env):
    seg = segment.ClickSegmenter()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    mask = seg.segment([(40, 30, 1)], image)
    assert mask.shape == (90, 130) and mask.dtype == bool
    assert seg.embeddings_computed == 1
    again = seg.segment([(40, 30, 1)], image)
    assert np.array_equal(mask, again)  # same embedding, same click, same answer
    seg.segment([(40, 30, 1), (100, 70, 0)], image)
    seg.segment([(5, 5, 1)])  # the held embedding, no image passed
    assert seg.embeddings_computed == 1
    other = image.copy()
    other[0, 0] ^= 1
    seg.segment([(40, 30, 1)], other)
    assert seg.embeddings_computed == 2
    assert not seg.prepare(other)  # the same content again: no encoder run


def test_click_mask_follows_the_decoder_output(models_env, monkeypatch):
    """The plumbing maps the decoder's best low-res mask onto the full image the right way round."""
    import torch

    seg = segment.ClickSegmenter()
    image = np.zeros((60, 120), np.uint8)  # gray, 2:1
    seg.prepare(image)
    real_forward = seg._model.forward

    def forward(**kw):
        out = real_forward(**kw)
        pred = torch.full_like(out.pred_masks, -5.0)
        pred[0, 0, 1, :, 16:] = 5.0  # right half of the 32×32 low-res mask, in the best candidate
        out.pred_masks = pred
        out.iou_scores = torch.tensor([[[0.1, 0.9, 0.2]]])
        return out

    monkeypatch.setattr(seg._model, "forward", forward)
    mask = seg.segment([(10, 10, 1)])
    assert mask[:, 62:].all() and not mask[:, :58].any()


def test_prepare_runs_off_the_calling_thread(models_env):
    seg = segment.ClickSegmenter()
    image = np.random.default_rng(1).integers(0, 256, (50, 50, 4), dtype=np.uint8)
    worker = threading.Thread(target=seg.prepare, args=(image,))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and seg.embeddings_computed == 1
    assert seg.segment([(25, 25, 1)], image).shape == (50, 50) and seg.embeddings_computed == 1


def test_bad_input(models_env):
    seg = segment.ClickSegmenter()
    with pytest.raises(ValueError, match="8-bit"):
        seg.prepare(np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(ValueError, match="at least one click"):
        seg.segment([], np.zeros((8, 8, 3), np.uint8))


def test_a_matching_key_needs_no_image_and_a_stale_key_is_refused(models_env):
    seg = segment.ClickSegmenter()
    image = np.random.default_rng(4).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert seg.prepare(image, key="doc:1")
    assert seg.segment([(10, 10, 1)], key="doc:1").shape == (40, 60)
    assert seg.segment([(10, 10, 1)], image, key="doc:1").shape == (40, 60) and seg.embeddings_computed == 1
    with pytest.raises(RuntimeError, match="image changed"):
        seg.segment([(10, 10, 1)], key="doc:2")
    seg.segment([(10, 10, 1)], image, key="doc:2")
    assert seg.embeddings_computed == 2
