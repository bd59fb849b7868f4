"""The generation history: every run with a thumbnail and its parameters, newest first.

A run's parameters are those *as run* (the random seed replaced by the one used), so "Recall"
reproduces it exactly and "Re-run with new seed" varies only the seed.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from app.core.params import CLASSICAL_METHODS
from app.core.records import GenerationRecord
from app.widgets.candidates import region_around, thumbnail_pixmap

THUMB = 64


def has_seed(params) -> bool:
    """Whether a run's seed meant anything: the service records seed 0 for a method without
    seeds (a classical one, LaMa), which would only mislead if shown."""
    return not (params.is_prompt_free and params.seed == 0)


def parked_note(record: GenerationRecord, canvas: tuple[int, int] | None) -> str:
    """Why a record's candidates cannot be reviewed now: they were made on a canvas of another
    size (before an Expand canvas, or on one since undone). "" when they fit."""
    if not record.candidates or canvas is None:
        return ""
    h, w = record.candidates[0].shape[:2]
    return "" if (w, h) == tuple(canvas) else f"made on a {w}×{h} canvas: undo/redo Expand canvas to review"


def describe(record: GenerationRecord, canvas: tuple[int, int] | None = None) -> tuple[str, str]:
    """(two-line list text, full tooltip) of a record; ``canvas`` (w, h) notes candidates that do not fit it."""
    p = record.params
    model = CLASSICAL_METHODS[p.model].label if p.model in CLASSICAL_METHODS else p.model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
    first = (p.prompt[:48] + "…") if len(p.prompt) > 48 else (p.prompt or "(no prompt)")
    applied = "  ✓ applied" if record.applied is not None else ""
    sampled = f" · seed {p.seed}" if has_seed(p) else ""
    note = parked_note(record, canvas)
    text = f"{first}\n{model}{sampled}\n{p.mode} · ×{len(record.candidates)} · {record.elapsed_s:.1f} s · {stamp}{applied}"
    text += f"\n⚠ {note}" if note else ""
    size = f"{p.width}×{p.height}" if p.width else "auto"
    tip = "\n".join(
        [
            f"Prompt: {p.prompt or '—'}",
            f"Negative: {p.negative_prompt or '—'}",
            f"Model: {p.model}   Mode: {p.mode}",
            *([] if not has_seed(p) else [f"Scheduler: {p.scheduler}   Steps: {p.steps}   CFG: {p.guidance:g}   Strength: {p.strength:g}",
                                          f"Seed: {p.seed}   Batch: {p.batch_size}   Size: {size}"]),
            f"Mask blur: {p.mask_blur}   Grow: {p.mask_grow}   Area: {p.inpaint_area} (+{p.padding}px)   Content: {p.masked_content}",
            f"Backend: {record.backend or '?'}   Time: {record.elapsed_s:.2f} s",
            *([f"Candidates {note}"] if note else []),
        ]
    )
    return text, tip


class HistoryPanel(QWidget):
    """Lists `Document.generations`; the window connects the three request signals."""

    recall_requested = Signal(object)  # GenerationRecord
    rerun_requested = Signal(object)
    rerun_new_seed_requested = Signal(object)
    show_requested = Signal(object)  # bring its candidates back into the candidates panel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._records: list[GenerationRecord] = []
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setAlternatingRowColors(True)
        self.list.setWordWrap(True)
        self.list.currentRowChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(lambda _item: self._emit(self.show_requested))
        self.empty = QLabel("Each generation is kept here with its parameters.")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: palette(mid);")
        self.recall_button = QPushButton("Recall")
        self.recall_button.setToolTip("Put this run's parameters (with its seed) into the parameters panel")
        self.rerun_button = QPushButton("Re-run")
        self.rerun_button.setToolTip("Run again with exactly these parameters on the current mask")
        self.new_seed_button = QPushButton("New seed")
        self.new_seed_button.setToolTip("Run again with these parameters and a new random seed")
        self.recall_button.clicked.connect(lambda: self._emit(self.recall_requested))
        self.rerun_button.clicked.connect(lambda: self._emit(self.rerun_requested))
        self.new_seed_button.clicked.connect(lambda: self._emit(self.rerun_new_seed_requested))
        buttons = QHBoxLayout()
        for b in (self.recall_button, self.rerun_button, self.new_seed_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.set_records([])

    def set_records(self, records: list[GenerationRecord], canvas: tuple[int, int] | None = None) -> None:
        """Show ``records`` newest first; keeps the selection on the same record when possible.
        ``canvas``: the image's (w, h), to note records whose candidates do not fit it."""
        selected = self.selected()
        newest = self._records[0] if self._records else None
        self._records = list(reversed(records))
        if self._records and self._records[0] is not newest:
            selected = self._records[0]  # a new run: show it
        self.list.blockSignals(True)
        self.list.clear()
        for rec in self._records:
            text, tip = describe(rec, canvas)
            icon = QIcon()
            if rec.candidates:
                shown = rec.candidates[rec.applied if rec.applied is not None else 0]
                icon = QIcon(thumbnail_pixmap(shown, THUMB, region_around(rec.regions, shown.shape)))
            item = QListWidgetItem(icon, text)
            item.setToolTip(tip)
            self.list.addItem(item)
        row = next((i for i, r in enumerate(self._records) if r is selected), 0 if self._records else -1)
        self.list.setCurrentRow(row)
        self.list.blockSignals(False)
        self.list.setVisible(bool(self._records))
        self.empty.setVisible(not self._records)
        self._update_buttons()

    def records(self) -> list[GenerationRecord]:
        """Newest first, as listed."""
        return list(self._records)

    def selected(self) -> GenerationRecord | None:
        row = self.list.currentRow()
        return self._records[row] if 0 <= row < len(self._records) else None

    def select(self, record: GenerationRecord) -> None:
        for i, r in enumerate(self._records):
            if r is record:
                self.list.setCurrentRow(i)

    def _emit(self, signal) -> None:
        record = self.selected()
        if record is not None:
            signal.emit(record)

    def _update_buttons(self, *_args) -> None:
        record = self.selected()
        for b in (self.recall_button, self.rerun_button):
            b.setEnabled(record is not None)
        # a classical method has no seed: a "new seed" run would repeat the same result
        seeded = record is None or has_seed(record.params)
        self.new_seed_button.setEnabled(record is not None and seeded)
        self.new_seed_button.setToolTip("Run again with these parameters and a new random seed" if seeded
                                        else "This method has no seed: a new run gives the same result")
