"""Region planning: what each backend sees, at what size."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import maskops, regions
from app.core.geometry import Bounds
from app.core.regions import merge_touching, plan_regions


def _mask(h, w, *rects):
    m = np.zeros((h, w), np.uint8)
    for x, y, rw, rh in rects:
        m[y : y + rh, x : x + rw] = 255
    return m


def test_single_blob_native_region_is_box_plus_feather_plus_padding():
    m = _mask(400, 600, (200, 100, 50, 30))
    (plan,) = plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=None)
    reach = 32 + maskops.feather_reach(4)
    assert plan.crop == Bounds(200 - reach, 100 - reach, 50 + 2 * reach, 30 + 2 * reach)
    assert plan.work_size == (plan.crop.width, plan.crop.height)  # classical: no resize
    assert plan.owned is None


def test_padding_clamped_at_image_edges():
    (plan,) = plan_regions(_mask(100, 100, (0, 90, 10, 10)), padding=32, blur=4, whole_image=False, context=None, target=None)
    assert plan.crop.x == 0 and plan.crop.bottom == 100


def test_far_apart_areas_get_their_own_full_detail_regions():
    m = _mask(2000, 3000, (100, 100, 40, 40), (2800, 1800, 60, 30))
    plans = plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=(None, None))
    assert len(plans) == 2
    for plan in plans:
        ww, wh = plan.work_size
        assert ww % 8 == 0 and wh % 8 == 0 and 256 <= ww <= 2048 and 256 <= wh <= 2048
        # widened to the model's aspect: no stretch beyond rounding to 8 px
        assert abs(plan.crop.width / plan.crop.height - ww / wh) < 0.03
        # each is upscaled (full detail), not squeezed with the other into one view
        assert ww >= plan.crop.width
    owned = [p.owned for p in plans]
    assert not owned[0].intersects(owned[1])


def test_nearby_areas_merge():
    m = _mask(500, 500, (100, 100, 20, 20), (150, 100, 20, 20))
    (plan,) = plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=None)
    assert plan.crop.contains(Bounds(100, 100, 70, 20))


def test_whole_image_mode_and_context_box():
    m = _mask(300, 500, (10, 10, 5, 5))
    (whole,) = plan_regions(m, padding=32, blur=4, whole_image=True, context=None, target=(None, None))
    assert whole.crop == Bounds(0, 0, 500, 300)
    ctx = Bounds(100, 50, 300, 200)
    (c,) = plan_regions(m, padding=32, blur=4, whole_image=False, context=ctx, target=None)
    assert c.crop.contains(ctx) and c.crop.contains(Bounds(10, 10, 5, 5).pad(5).clamp(500, 300))
    assert c.crop.width < 500  # the context, not the whole image
    (off,) = plan_regions(m, padding=32, blur=4, whole_image=False, context=Bounds(900, 900, 50, 50), target=None)
    assert off.crop.contains(Bounds(10, 10, 5, 5)) and off.crop.width < 100  # a box off the image is ignored


def test_fixed_model_size_and_aspect_widening():
    m = _mask(1000, 1000, (400, 400, 100, 20))
    (plan,) = plan_regions(m, padding=8, blur=0, whole_image=False, context=None, target=(512, 512))
    assert plan.work_size == (512, 512)
    assert plan.crop.width == plan.crop.height  # widened to square
    assert plan.crop.contains(Bounds(400, 400, 100, 20))


def test_image_smaller_than_model_still_plans():
    for shape in [(16, 16), (1, 97), (97, 1)]:
        m = np.full(shape, 255, np.uint8)
        (plan,) = plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=(None, None))
        assert plan.crop == Bounds(0, 0, shape[1], shape[0])
        assert all(v % 8 == 0 and v >= 256 for v in plan.work_size)


def test_long_thin_scratch_is_tiled_and_tiles_cover_the_mask_once():
    m = np.zeros((3000, 4000), np.uint8)
    for i in range(3500):  # diagonal scratch, 3 px wide
        m[200 + i * 2 // 3 : 203 + i * 2 // 3, 250 + i] = 255
    plans = plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=(None, None))
    assert len(plans) > 3
    cover = np.zeros(m.shape, np.int32)
    for p in plans:
        cover[p.owned.slices] += 1
        assert p.crop.contains(p.owned.pad(32).clamp(4000, 3000))
        assert p.crop.width <= 1400 and p.crop.height <= 1400  # each a model-sized view
    assert cover[m > 0].min() == 1 and cover[m > 0].max() == 1
    # a classical backend sees the same scratch at native resolution in one region
    assert len(plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=None)) == 1


def test_big_blob_is_not_tiled():
    m = _mask(3000, 3000, (500, 500, 1600, 1600))
    assert len(plan_regions(m, padding=32, blur=4, whole_image=False, context=None, target=(None, None))) == 1


def test_work_size_for():
    assert regions.work_size_for(Bounds(0, 0, 100, 50), None) == (100, 50)
    w, h = regions.work_size_for(Bounds(0, 0, 1000, 500), (None, None))
    assert w % 8 == 0 and h % 8 == 0 and abs(w / h - 2) < 0.03 and abs(w * h / 512**2 - 1) < 0.05
    assert regions.work_size_for(Bounds(0, 0, 1000, 500), (768, None)) == (768, 384)


boxes = st.lists(
    st.builds(lambda x, y, w, h: Bounds(x, y, w, h), st.integers(0, 300), st.integers(0, 300), st.integers(1, 40), st.integers(1, 40)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(bs=boxes, reach=st.integers(0, 30))
def test_merge_touching_property(bs, reach):
    merged = merge_touching(bs, reach, 400, 400)
    for b in bs:  # every input inside exactly one output
        assert sum(m.contains(b) for m in merged) >= 1
    for i, a in enumerate(merged):  # no two outputs touch once padded
        for b in merged[i + 1 :]:
            assert not a.pad(reach).clamp(400, 400).intersects(b.pad(reach).clamp(400, 400))
