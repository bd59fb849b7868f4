"""The params panel's soft-inpainting and reference-image group: fields round-trip through
`GenerationParams`, and the window's request carries the reference image and the grey mask."""

from __future__ import annotations

import numpy as np

from app.core.guides import Reference, SoftInpainting
from app.core.params import GenerationParams
from app.editor.worker import GenerationWorker
from doubles import paint_seeds, shown_window
from test_params_panel import panel  # noqa: F401 (fixture)




def test_soft_and_reference_fields_round_trip(panel, qtbot):
    assert panel.params().soft_inpainting is None and panel.params().reference is None
    with qtbot.waitSignal(panel.changed, timeout=5000):
        panel.guides.soft.setChecked(True)
    assert panel.params().soft_inpainting == SoftInpainting()
    panel.guides.soft_more.setChecked(True)
    assert panel.guides.soft_group.isVisibleTo(panel)
    panel.guides.soft_boxes["preservation_strength"].setValue(1.25)
    assert not panel.guides.weight.isEnabled()  # no image yet: no reference
    panel.guides.set_reference_image(np.zeros((20, 30, 3), np.uint8))
    panel.guides.weight.setValue(0.9)
    params = panel.params()
    assert params.soft_inpainting == SoftInpainting(preservation_strength=1.25)
    assert params.reference == Reference("ip-adapter_sd15", 0.9)
    recalled = GenerationParams(prompt="x", soft_inpainting=SoftInpainting(difference_threshold=2.0),
                                reference=Reference("my-ip.bin", 0.3))
    panel.set_params(recalled)
    assert panel.params().soft_inpainting == recalled.soft_inpainting
    assert panel.params().reference == recalled.reference  # the image chosen stays
    panel.guides.set_reference_image(None)
    panel.set_params(GenerationParams(prompt="x"))
    assert panel.params().soft_inpainting is None and panel.params().reference is None


class RecordingBackend:
    name = "test:recording"
    native_resolution = True

    def __init__(self):
        self.requests = []

    def generate(self, request, progress, cancelled):
        self.requests.append(request)
        progress(1, 1, None)
        return paint_seeds(request)


def test_window_request_carries_reference_image_and_grey_mask(qtbot, tmp_path):
    backend = RecordingBackend()
    window = shown_window(qtbot, tmp_path / "s.ini", GenerationWorker(lambda *a: backend))
    try:
        window.files.open_image_array(np.full((48, 64, 3), 90, np.uint8))
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 10:20], mask[10:30, 20:40] = 100, 255
        window.document.set_mask(mask)
        window.params_panel.set_model("some/model", classical=False)  # the group is greyed out for classical ones
        window.params_panel.guides.from_canvas.click()  # the open image becomes the reference
        assert np.array_equal(window.params_panel.guides.reference_image, window.document.pixels)
        look = np.full((16, 16, 3), 200, np.uint8)
        window.params_panel.guides.set_reference_image(look)
        window.params_panel.guides.soft.setChecked(True)
        window.params_panel.mask_blur.setValue(0)
        assert window.generation.generate()
        qtbot.waitUntil(lambda: not window.session.generating, timeout=20000)
        sent = backend.requests[-1]
        assert np.array_equal(sent.reference_image, look)
        assert sent.soft_mask is not None and {0, 100, 255} <= set(np.unique(sent.soft_mask))
        assert sent.params.reference == Reference("ip-adapter_sd15", 0.6)
    finally:
        window.force_close()
