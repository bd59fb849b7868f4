"""The "Get models…" dialog driven with qtbot: nothing is fetched until Download; progress and the
finished signal arrive on the GUI thread while the download runs on a background thread; Cancel
leaves no model behind; a failure shows its one line."""

from __future__ import annotations

import threading

import pytest

from app.inference.diffusers import catalog
from app.storage import download_catalogue, downloads
from app.widgets.download_dialog import SCALE, DownloadDialog
from fake_hub import REPO, hub, hub_env  # noqa: F401 (fixtures)

UNET = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def dialog(qtbot, hub, tmp_path):
    dlg = DownloadDialog(dest=tmp_path / "models")
    (tmp_path / "models").mkdir()
    qtbot.addWidget(dlg)
    dlg.show()
    yield dlg
    dlg.cancel()


def test_nothing_is_fetched_until_download_is_pressed_then_the_model_is_listed(qtbot, dialog, hub, tmp_path, monkeypatch):
    assert dialog.catalogue.count() == len(download_catalogue.CATALOGUE)
    dialog.catalogue.setCurrentRow(0)
    assert dialog.selected_source() == download_catalogue.CATALOGUE[0].key
    assert hub.requests == []  # opening and browsing the dialog reaches no server

    threads = set()
    dialog._relay.progressed.connect(lambda p: threads.add(threading.current_thread() is threading.main_thread()))
    dialog.source.selectAll()
    qtbot.keyClicks(dialog.source, REPO)
    assert dialog.catalogue.currentItem() is None  # typing replaces the catalogue choice
    assert dialog.selected_source() == REPO
    with qtbot.waitSignal(dialog.model_downloaded, timeout=60_000) as done:
        dialog.download_button.click()
        assert dialog.busy and not dialog.download_button.isEnabled() and dialog.cancel_button.isEnabled()
    path = tmp_path / "models" / "tiny-inpaint"
    assert done.args == [str(path)]
    assert threads == {True}  # every report is handled on the GUI thread
    assert dialog.progress.value() == SCALE and dialog.status.text().startswith("Downloaded:")
    assert dialog.download_button.isEnabled() and not dialog.cancel_button.isEnabled()
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path / "models"))
    assert str(path) in {m.ref for m in catalog.discover_models()}


def test_cancel_stops_the_download_and_leaves_no_model(qtbot, dialog, hub, tmp_path):
    hub.rate = 1_000_000  # slow enough to press Cancel in the middle of the unet
    dialog.source.setText(REPO)
    dialog.download_button.click()
    qtbot.waitUntil(lambda: 0 < dialog.progress.value() and UNET in dialog.status.text(), timeout=60_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.status.text().startswith("Cancelled"), timeout=30_000)
    assert 0 < dialog.progress.value() < SCALE
    assert [p.name for p in (tmp_path / "models").iterdir()] == [downloads.STAGING]
    assert dialog.download_button.isEnabled() and dialog.source.isEnabled()


def test_a_failure_shows_one_line(qtbot, dialog):
    dialog.source.setText("org/missing")
    dialog.download_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.status.text().startswith("Failed"), timeout=30_000)
    assert "(404)" in dialog.status.text() and "\n" not in dialog.status.text()
    assert dialog.progress.value() == 0
