"""Project format 3: an expanded canvas round-trips (original offset and size, older candidates);
version 1 and 2 files still open; bad offsets/sizes are refused with a message."""

import numpy as np
import pytest

from app.core.outpaint import Expansion, expand_mask, expand_pixels
from app.editor.document import Document
from app.storage.project import FORMAT_VERSION, ProjectError, load_project, load_project_bytes, project_bytes, save_project
from app.editor.snapshot import project_state
from reliability_fixtures import assert_states_equal, make_state, manifest_of, rewrite, v1_project


def _expanded_state(channels=4, dtype=np.uint16):
    state = make_state(channels=channels, dtype=dtype)
    exp = Expansion(37, 0, 64, 5)
    state.current = expand_pixels(state.current, exp, "blur")
    state.mask = expand_mask(state.mask, exp)
    state.original_offset = exp.offset
    return state


def test_expanded_project_round_trips_exactly(tmp_path):
    assert FORMAT_VERSION == 3
    state = _expanded_state()
    again = load_project(save_project(tmp_path / "p.inpaint", state))
    assert_states_equal(state, again)
    assert again.original_offset == (37, 0) and again.original.shape == (24, 32, 4)
    assert again.generations[0].candidates[0].shape == (24, 32, 4)  # made before the expansion
    m = manifest_of((tmp_path / "p.inpaint").read_bytes())
    assert m["original_offset"] == [37, 0] and m["original_size"] == [32, 24] and m["generations"][0]["size"] == [32, 24]


def test_document_expand_then_save_and_reopen(qapp, tmp_path):
    doc = Document()
    img = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    doc.set_image(img)
    doc.expand_canvas(Expansion(0, 8, 16, 0), "solid")
    save_project(tmp_path / "d.inpaint", project_state(doc))
    other = Document()
    other.load_state(load_project(tmp_path / "d.inpaint"))
    assert other.original_offset == (0, 8) and other.size == (56, 38)
    assert np.array_equal(other.pixels, doc.pixels) and np.array_equal(other.original, img)
    assert other.context_box == doc.context_box


def test_version_2_project_opens_with_the_original_in_place(tmp_path):
    data = project_bytes(make_state())
    m = manifest_of(data)
    m["format_version"] = 2
    for key in ("original_offset", "original_size"):
        del m[key]
    for g in m["generations"]:
        g.pop("size", None)
    state = load_project_bytes(rewrite(data, manifest=m))
    assert_states_equal(state, make_state())
    assert state.original_offset == (0, 0)


def test_version_1_project_opens():
    current = np.random.default_rng(2).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    state = load_project_bytes(v1_project(current, np.zeros((12, 10), np.uint8)))
    assert np.array_equal(state.current, current) and state.original_offset == (0, 0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"original_offset": [102, 0]}, "original offset x"),  # 133 wide, original 32
        ({"original_offset": "left"}, "not \\[x, y\\]"),
        ({"original_size": [200, 24]}, "original image width"),
        ({"original_size": [32, 24, 1]}, "not \\[width, height\\]"),
    ],
)
def test_bad_canvas_fields_are_refused(change, message):
    data = project_bytes(_expanded_state())
    m = manifest_of(data)
    m.update(change)
    with pytest.raises(ProjectError, match=message):
        load_project_bytes(rewrite(data, manifest=m))


def test_saving_an_original_that_does_not_fit_is_refused():
    state = _expanded_state()
    state.original_offset = (120, 0)
    with pytest.raises(ValueError, match="does not fit"):
        project_bytes(state)
