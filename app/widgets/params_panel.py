"""The parameters panel: every `GenerationParams` field, edited with widgets whose ranges are the
ranges of `GenerationParams.validate`, so an invalid value cannot be typed in the first place;
what ranges cannot express (a prompt a diffusion model needs) is flagged under the fields.

Sampler and schedule type names come from `app.core.schedulers`, a plain table that imports neither torch
nor diffusers (`tests/test_params_panel.py` checks the panel import stays torch-free).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.widgets.seed_box import SeedBox
from app.core.schedulers import SAMPLER_NAMES, compose, schedules_for, split  # plain tables: no torch
from app.core.sigma_schedules import SCHEDULE_TYPES
from app.service.fields import build, check_nominal
from app.widgets.guides_panel import GuidesPanel
from app.widgets.networks_panel import NetworksPanel
from app.widgets.panel_names import PANEL
from app.storage.paths import resources_dir
from app.core.params import DEFAULT_MODEL, GenerationParams, ParamError, default_strength, is_lama_model

MODE_LABELS = {"inpaint": "Inpaint (repaint the mask)", "img2img": "Image to image"}
AREA_LABELS = {"masked": "Only masked (crop + padding)", "whole": "Whole image"}
CONTENT_LABELS = {"original": "Original", "fill": "Fill (classical infill)", "latent_noise": "Latent noise",
                  "latent_nothing": "Latent nothing"}
COLOR_MATCH_LABELS = {"auto": "Auto (diffusion models)", "on": "On", "off": "Off"}


def _icon(name: str, size: int = 32) -> QIcon:
    """An SVG icon with an explicitly faded Disabled mode: Qt's SVG engine draws disabled icons
    as bright as enabled ones, so the classical method's greyed seed buttons looked usable."""
    icon = QIcon(str(resources_dir() / "icons" / f"{name}.svg"))
    normal = icon.pixmap(size, size)
    faded = QPixmap(normal.size())
    faded.setDevicePixelRatio(normal.devicePixelRatio())
    faded.fill(Qt.GlobalColor.transparent)
    painter = QPainter(faded)
    painter.setOpacity(0.3)
    painter.drawPixmap(0, 0, normal)
    painter.end()
    icon.addPixmap(normal, QIcon.Mode.Normal)
    icon.addPixmap(faded, QIcon.Mode.Disabled)
    return icon


def _combo(items: dict[str, str]) -> QComboBox:
    box = QComboBox()
    for value, label in items.items():
        box.addItem(label, value)
    return box


def _spin(lo: int, hi: int, *, suffix: str = "", tooltip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSuffix(suffix)
    box.setToolTip(tooltip)
    return box


def _dspin(lo: float, hi: float, step: float, decimals: int, tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setToolTip(tooltip)
    return box


def _form(title: str) -> tuple[QGroupBox, QFormLayout]:
    box = QGroupBox(title)
    layout = QFormLayout(box)
    layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    layout.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return box, layout


def _row(spacing: int, *items) -> QHBoxLayout:
    """A row of widgets; an item ``(widget, stretch)`` takes that stretch."""
    row = QHBoxLayout()
    row.setSpacing(spacing)
    for item in items:
        widget, stretch = item if isinstance(item, tuple) else (item, 0)
        row.addWidget(widget, stretch)
    return row


def _set_combo(box: QComboBox, value: str) -> None:
    index = box.findData(value)
    if index < 0:  # e.g. a scheduler alias recalled from an A1111 PNG: keep it selectable
        box.addItem(value, value)
        index = box.count() - 1
    box.setCurrentIndex(index)


class ParamsPanel(QWidget):
    """Edits a `GenerationParams`; ``changed`` fires on every edit."""

    changed = Signal()
    generate_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *, networks_discover=None) -> None:
        super().__init__(parent)
        self._model = DEFAULT_MODEL
        self._extra: dict = {}
        self._last_seed: int | None = None
        self._classical = True
        self._loading = False

        self._make_prompt_widgets(networks_discover)
        self._make_sampling_widgets()
        self._make_seed_widgets()
        self._make_mask_widgets()
        self.validation = QLabel()
        self.validation.setWordWrap(True)
        self.validation.setStyleSheet("color: #ff8c8c;")
        self.validation.hide()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setMinimumHeight(34)
        self.generate_button.setStyleSheet("QPushButton { font-weight: bold; }")
        self.generate_button.clicked.connect(self.generate_requested)
        self._build_layout()
        self.set_params(GenerationParams())
        self._connect_edits()

    def _make_prompt_widgets(self, networks_discover) -> None:
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("What should appear in the masked area, e.g. “a wooden bench, evening light”")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setFixedHeight(84)
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("What to avoid, e.g. “blurry, text, watermark”")
        self.negative.setTabChangesFocus(True)
        self.negative.setFixedHeight(56)
        self.mode = _combo(MODE_LABELS)
        self.networks = NetworksPanel(discover=networks_discover)
        self.networks.insert_text.connect(self.insert_in_prompt)
        self.guides = GuidesPanel()  # soft inpainting, reference image
        self.guides.changed.connect(self._on_changed)

    def _make_sampling_widgets(self) -> None:
        self.scheduler = QComboBox()  # the sampler; with `schedule`, the pair params carry ("Euler a Karras")
        for name in SAMPLER_NAMES:
            self.scheduler.addItem(name, name)
        self.schedule = QComboBox()
        for name in SCHEDULE_TYPES:
            self.schedule.addItem(name, name)
        self.schedule.setToolTip("Schedule type: the noise levels the sampler steps through (Automatic: the sampler's own)")
        self.steps = _spin(1, 150)
        self.guidance = _dspin(0.0, 30.0, 0.5, 1, "Classifier-free guidance (CFG): how strictly the prompt is followed")
        self.strength = _dspin(0.01, 1.0, 0.05, 2,
                               "Denoising strength: 1 repaints completely, lower keeps more of the original")
        self.batch = _spin(1, 8, tooltip="Images per run: each becomes a candidate to compare")
        self.auto_size = QCheckBox("Auto")
        self.auto_size.setToolTip("Derive the model resolution from the masked region (multiple of 8)")
        self.width_box = _spin(256, 2048, suffix=" px")
        self.height_box = _spin(256, 2048, suffix=" px")
        for box in (self.width_box, self.height_box):
            box.setSingleStep(8)
            box.setValue(512)
            box.editingFinished.connect(lambda b=box: b.setValue(round(b.value() / 8) * 8))

    def _make_seed_widgets(self) -> None:
        self.seed = SeedBox()
        self.random_seed = QToolButton()
        self.random_seed.setIcon(_icon("dice"))
        self.random_seed.setToolTip("Random seed (−1): a new one each run, recorded in the history")
        self.reuse_seed = QToolButton()
        self.reuse_seed.setIcon(_icon("reuse"))
        self.reuse_seed.setToolTip("Reuse the seed of the last generation")
        self.reuse_seed.setEnabled(False)
        self.lock_seed = QToolButton()
        self.lock_seed.setText("Lock")
        self.lock_seed.setCheckable(True)
        self.lock_seed.setToolTip("Lock the seed: keep it for every run. Unlocked, a typed or recalled seed is used "
                                  "for the next run only, then the seed returns to Random")

    def _make_mask_widgets(self) -> None:
        self.mask_blur = _spin(0, 64, suffix=" px", tooltip="Feather width of the blend between result and original")
        self.mask_grow = _spin(0, 64, suffix=" px")
        self.inpaint_area = _combo(AREA_LABELS)
        self.padding = _spin(0, 256, suffix=" px", tooltip="Context around the mask that the model sees (only masked)")
        self.masked_content = _combo(CONTENT_LABELS)
        self.color_match = _combo(COLOR_MATCH_LABELS)
        self.color_match.setToolTip("Match tone and colour of the generated area to its surround, so no seam shows")

    def _connect_edits(self) -> None:
        for w in (self.prompt, self.negative):
            w.textChanged.connect(self._on_changed)
        self.scheduler.currentIndexChanged.connect(self._enable_schedule)
        for w in (self.scheduler, self.schedule, self.inpaint_area, self.masked_content, self.color_match):
            w.currentIndexChanged.connect(self._on_changed)
        self.mode.currentIndexChanged.connect(self._on_mode_changed)
        for w in (self.steps, self.batch, self.width_box, self.height_box, self.mask_blur, self.mask_grow, self.padding):
            w.valueChanged.connect(self._on_changed)
        for w in (self.guidance, self.strength, self.seed):
            w.valueChanged.connect(self._on_changed)
        self.auto_size.toggled.connect(self._on_auto_size)
        self.random_seed.clicked.connect(lambda: self.seed.setValue(-1))
        self.reuse_seed.clicked.connect(self.reuse_last_seed)

    def _build_layout(self) -> None:
        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(4, 4, 4, 4)
        for w in (self._prompt_group(), self.networks, self._sampling_group(), self._mask_group(), self.guides):
            col.addWidget(w)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(inner)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll, 1)
        bottom = QVBoxLayout()
        bottom.setContentsMargins(6, 2, 6, 6)
        bottom.addWidget(self.validation)
        bottom.addWidget(self.generate_button)
        outer.addLayout(bottom)

    def _prompt_group(self) -> QGroupBox:
        box = QGroupBox("Prompt")
        pl = QVBoxLayout(box)
        pl.addWidget(self.prompt)
        neg_label = QLabel("Negative prompt")
        neg_label.setStyleSheet("color: palette(mid);")
        pl.addWidget(neg_label)
        pl.addWidget(self.negative)
        mode_row = QFormLayout()
        mode_row.addRow("Mode", self.mode)
        pl.addLayout(mode_row)
        return box

    def _sampling_group(self) -> QGroupBox:
        box, sl = _form("Sampling")
        for label, w in (("Sampler", self.scheduler), ("Schedule type", self.schedule), ("Steps", self.steps),
                         ("Guidance", self.guidance), ("Strength", self.strength)):
            sl.addRow(label, w)
        sl.addRow("Seed", _row(2, (self.seed, 1), self.random_seed, self.reuse_seed, self.lock_seed))
        sl.addRow("Batch size", self.batch)
        sl.addRow("Resolution", _row(4, self.auto_size, (self.width_box, 1), QLabel("×"), (self.height_box, 1)))
        return box

    def _mask_group(self) -> QGroupBox:
        box, ml = _form("Mask and area")
        for label, w in (("Mask blur", self.mask_blur), ("Mask grow", self.mask_grow), ("Inpaint area", self.inpaint_area),
                         ("Padding", self.padding), ("Masked content", self.masked_content),
                         ("Colour match", self.color_match)):
            ml.addRow(label, w)
        return box

    # -- reading and writing ------------------------------------------------------------------
    def params(self) -> GenerationParams:
        """The parameters as edited, through the service's builder (not checked: see `validation_message`)."""
        auto = self.auto_size.isChecked()
        return build(PANEL, dict(
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.toPlainText().strip(),
            mode=self.mode.currentData(),
            model=self._model,
            scheduler=compose(self.scheduler.currentData(), self.schedule.currentData()),
            steps=self.steps.value(),
            guidance=round(self.guidance.value(), 2),
            strength=round(self.strength.value(), 2),
            seed=self.seed.seed(),
            batch_size=self.batch.value(),
            width=None if auto else self.width_box.value(),
            height=None if auto else self.height_box.value(),
            mask_blur=self.mask_blur.value(),
            mask_grow=self.mask_grow.value(),
            inpaint_area=self.inpaint_area.currentData(),
            padding=self.padding.value(),
            masked_content=self.masked_content.currentData(),
            color_match=self.color_match.currentData(),
            extra=dict(self._extra),
            **self.guides.fields(),
        ))

    def set_params(self, params: GenerationParams) -> None:
        """Show ``params`` (e.g. recalled from history or a PNG); one ``changed`` at the end."""
        self._loading = True
        try:
            self._model = params.model
            self._extra = dict(params.extra)
            if self.prompt.toPlainText() != params.prompt:
                self.prompt.setPlainText(params.prompt)
            if self.negative.toPlainText() != params.negative_prompt:
                self.negative.setPlainText(params.negative_prompt)
            _set_combo(self.mode, params.mode)
            try:
                sampler, schedule = split(params.scheduler)
            except ParamError:  # not a name we run: kept as it is, so validation names it
                sampler, schedule = params.scheduler, SCHEDULE_TYPES[0]
            _set_combo(self.scheduler, sampler)
            _set_combo(self.schedule, schedule)
            self.steps.setValue(params.steps)
            self.guidance.setValue(params.guidance)
            self.strength.setValue(params.strength)
            self.seed.setValue(params.seed)
            self.batch.setValue(params.batch_size)
            auto = params.width is None or params.height is None
            self.auto_size.setChecked(auto)
            if not auto:
                self.width_box.setValue(params.width)
                self.height_box.setValue(params.height)
            self.width_box.setEnabled(not auto)
            self.height_box.setEnabled(not auto)
            self.mask_blur.setValue(params.mask_blur)
            self.mask_grow.setValue(params.mask_grow)
            _set_combo(self.inpaint_area, params.inpaint_area)
            self.padding.setValue(params.padding)
            _set_combo(self.masked_content, params.masked_content)
            _set_combo(self.color_match, params.color_match)
            self.guides.set_params(params)
        finally:
            self._loading = False
        self._on_changed()

    def set_model(self, model: str, classical: bool) -> None:
        """The model chosen in the picker: decides which fields matter. ``classical``: a
        prompt-free method (`GenerationParams.is_prompt_free`: classical or LaMa), which ignores
        prompt, scheduler, steps, CFG, strength and seed; those are greyed out rather than hidden,
        so nothing jumps, and the prompt's placeholder says it is not used."""
        self._model = model
        self._classical = classical
        for w in (self.scheduler, self.steps, self.guidance, self.strength, self.seed,
                  self.random_seed, self.lock_seed, self.batch, self.masked_content, self.networks, self.guides):
            w.setEnabled(not classical)
        self._enable_schedule()
        self.reuse_seed.setEnabled(not classical and self._last_seed is not None)
        self.auto_size.setEnabled(not classical)
        self.width_box.setEnabled(not classical and not self.auto_size.isChecked())
        self.height_box.setEnabled(not classical and not self.auto_size.isChecked())
        # The prompt stays editable (typed text is kept for the next diffusion run); its placeholder says it is unused.
        self.prompt.setPlaceholderText(self._prompt_placeholder())
        self._on_changed()

    def _prompt_placeholder(self) -> str:
        if not self._classical:
            return "What should appear in the masked area, e.g. “a wooden bench, evening light”"
        if is_lama_model(self._model):
            return ("LaMa uses no prompt and no seed: it continues the surrounding texture. "
                    "Choose a diffusion model to describe what to paint")
        return "Classical inpainting ignores the prompt: choose a diffusion model to use one"

    def set_last_seed(self, seed: int | None) -> None:
        self._last_seed = seed
        self.reuse_seed.setEnabled(seed is not None and not self._classical)
        if seed is not None:
            self.reuse_seed.setToolTip(f"Reuse the seed of the last generation ({seed})")

    def reuse_last_seed(self) -> None:
        if self._last_seed is not None:
            self.seed.setValue(self._last_seed)

    def insert_in_prompt(self, text: str) -> None:
        """Insert ``text`` at the prompt's cursor, spaced from its neighbours."""
        cursor = self.prompt.textCursor()
        before = self.prompt.toPlainText()[:cursor.position()]
        cursor.insertText((" " if before and not before[-1].isspace() else "") + text + " ")
        self.prompt.setTextCursor(cursor)

    def seed_used(self) -> None:
        """A run started with the form's seed: unless locked, the next run picks a new one, so a
        recalled seed does not silently pin every later run."""
        if not self.lock_seed.isChecked() and self.seed.seed() >= 0:
            self.seed.setValue(-1)

    def validation_message(self) -> str:
        """Why the current values cannot run (the service's rules, in the panel's names), or "" when they can."""
        try:
            check_nominal(self.params(), PANEL)
        except ParamError as exc:
            return str(exc)
        return ""

    # -- reactions ----------------------------------------------------------------------------
    def _on_mode_changed(self) -> None:
        """Switching mode moves strength to the new mode's default unless the user changed it."""
        if not self._loading:
            new = self.mode.currentData()
            old = "img2img" if new == "inpaint" else "inpaint"
            if abs(self.strength.value() - default_strength(old)) < 1e-6:
                self.strength.setValue(default_strength(new))
        self._on_changed()

    def _on_auto_size(self, auto: bool) -> None:
        self.width_box.setEnabled(not auto and not self._classical)
        self.height_box.setEnabled(not auto and not self._classical)
        self._on_changed()

    def _enable_schedule(self, *_args) -> None:
        """PLMS runs only its own schedule: the schedule type is Automatic there, and fixed."""
        free = len(schedules_for(self.scheduler.currentData())) > 1
        if not free:
            self.schedule.setCurrentIndex(0)
        self.schedule.setEnabled(free and not self._classical)

    def _on_changed(self, *_args) -> None:
        if self._loading:
            return
        message = self.validation_message()
        self.validation.setText(message)
        self.validation.setVisible(bool(message))
        self.generate_button.setEnabled(not message)
        self.changed.emit()
