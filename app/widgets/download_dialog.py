""""Get models…": pick a known-good model (or few-step LoRA, or restoration model) from the
catalogue, or type a Hugging Face repo id or a URL, and download it into the models folder (the
catalogue entry's sub-folder) with a progress bar and a Cancel button.

The download (`app.storage.downloads`, Qt-free) runs on a plain background thread; it reports
through a QObject's signals, which Qt delivers on the GUI thread, so the window never waits on
the network. Nothing is fetched until the user presses Download; a failure shows its one line.
Cancelling keeps the fetched part in the hidden staging folder: the next Download resumes it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from app.storage import download_catalogue, download_errors, downloads
from app.storage.paths import models_dir

#: QProgressBar holds an int: progress is shown in thousandths.
SCALE = 1000


class _Relay(QObject):
    """Carries the worker thread's reports to the GUI thread (queued signal delivery)."""

    progressed = Signal(object)  # downloads.DownloadProgress
    finished = Signal(object)  # downloads.Downloaded
    failed = Signal(str, bool)  # one line, cancelled?


class DownloadDialog(QDialog):
    model_downloaded = Signal(str)  # the path of the new model: refresh the model list
    lora_downloaded = Signal(str)  # the path of the new LoRA (in Lora/): refresh the LoRA list

    def __init__(self, parent=None, dest: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("Get models")
        self.dest = Path(dest) if dest is not None else models_dir()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._relay.finished.connect(self._on_finished)
        self._relay.failed.connect(self._on_failed)

        self.catalogue = QListWidget()
        self.catalogue.setWordWrap(True)  # long descriptions wrap instead of running off the right edge
        self.catalogue.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.catalogue.setSpacing(2)
        for entry in download_catalogue.CATALOGUE:
            item = QListWidgetItem(download_catalogue.describe_entry(entry))
            item.setData(Qt.ItemDataRole.UserRole, entry.key)
            item.setToolTip(f"{entry.page}\n{entry.note}")
            self.catalogue.addItem(item)
        self.catalogue.currentItemChanged.connect(self._on_pick)
        self.source = QLineEdit()
        self.source.setPlaceholderText("or a Hugging Face repo id (org/name) or a URL of a .safetensors file")
        self.source.textEdited.connect(lambda _text: self.catalogue.setCurrentItem(None))
        self.source.returnPressed.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setRange(0, SCALE)
        self.progress.setValue(0)
        self.status = QLabel(f"Nothing is downloaded until you press Download. Models go to {self.dest}.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.download_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Known-good Stable Diffusion 1.5 models, few-step LoRAs and restoration models:"))
        layout.addWidget(self.catalogue)
        layout.addWidget(self.source)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(640, 360)

    # -- state -----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def selected_source(self) -> str:
        return self.source.text().strip()

    def _on_pick(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is not None:
            self.source.setText(item.data(Qt.ItemDataRole.UserRole))

    def _set_busy(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.catalogue.setEnabled(not busy)
        self.source.setEnabled(not busy)

    # -- actions ---------------------------------------------------------------------------------
    def start(self) -> None:
        source = self.selected_source()
        if self.busy:
            return
        if not source:
            self.status.setText("Choose a model from the list, or type a repo id or URL.")
            return
        self._cancel.clear()
        self._set_busy(True)
        self.progress.setValue(0)
        self.status.setText(f"Asking the server about {source} …")
        self._thread = threading.Thread(target=self._work, args=(source,), name="model-download", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.status.setText("Cancelling …")

    def _work(self, source: str) -> None:
        """The background thread: never touches a widget, only emits."""
        try:
            result = downloads.get_model(source, self.dest, progress=self._relay.progressed.emit,
                                         cancel=self._cancel.is_set)
        except download_errors.DownloadCancelled as exc:
            self._relay.failed.emit(str(exc), True)
        except download_errors.DownloadError as exc:
            self._relay.failed.emit(str(exc), False)
        except Exception as exc:  # a bug must not kill the thread silently
            self._relay.failed.emit(download_errors.explain(exc, source), False)
        else:
            self._relay.finished.emit(result)

    # -- reports (GUI thread) --------------------------------------------------------------------
    def _on_progress(self, p: downloads.DownloadProgress) -> None:
        if p.total:
            self.progress.setValue(min(SCALE, int(SCALE * p.done / p.total)))
        self.status.setText(download_catalogue.format_progress(p))

    def _on_finished(self, result: downloads.Downloaded) -> None:
        self._set_busy(False)
        self.progress.setValue(SCALE)
        verb = "Already there" if result.already_present else "Downloaded"
        if result.folder == "Lora":
            self.status.setText(f"{verb}: {result.path} — it is now in the LoRA list.")
            self.lora_downloaded.emit(str(result.path))
        elif result.folder:
            self.status.setText(f"{verb}: {result.path}")
        else:
            self.status.setText(f"{verb}: {result.path} — it is now in the model list.")
            self.model_downloaded.emit(str(result.path))

    def _on_failed(self, message: str, cancelled: bool) -> None:
        self._set_busy(False)
        if not cancelled:
            self.progress.setValue(0)
        self.status.setText(("Cancelled: " if cancelled else "Failed: ") + message)

    def done(self, result: int) -> None:
        """Closing the dialog stops a running download (the part is kept for next time)."""
        if self.busy:
            self._cancel.set()
            self._thread.join(timeout=2)  # it stops at the next chunk; a stalled connect times out alone
        super().done(result)
