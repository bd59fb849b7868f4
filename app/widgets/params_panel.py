"""The parameters panel: every `GenerationParams` field, edited with widgets whose ranges are the
ranges of `GenerationParams.validate`, so an invalid value cannot be typed in the first place;
what ranges cannot express (a prompt a diffusion model needs) is flagged under the fields.

Sampler and schedule type names come from `app.core.schedulers`, a plain table that imports neither torch
nor diffusers (`tests/test_params_panel.py` checks the panel import stays torch-free).
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPixmap, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.schedulers import SAMPLER_NAMES, compose, schedules_for, split  # plain tables: no torch
from app.core.sigma_schedules import SCHEDULE_TYPES
from app.widgets.guides_panel import GuidesPanel
from app.widgets.networks_panel import NetworksPanel
from app.storage.paths import resources_dir
from app.core.params import DEFAULT_MODEL, SEED_MAX, GenerationParams, ParamError, default_strength

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


def _set_combo(box: QComboBox, value: str) -> None:
    index = box.findData(value)
    if index < 0:  # e.g. a scheduler alias recalled from an A1111 PNG: keep it selectable
        box.addItem(value, value)
        index = box.count() - 1
    box.setCurrentIndex(index)


class SeedBox(QLineEdit):
    """A whole-number field for 0…2⁶⁴−1 (spin boxes hold 32-bit ints or doubles, which round
    seeds above 2⁵³) showing −1 as "Random". ``valueChanged`` mirrors the spin boxes' signal."""

    valueChanged = Signal(object)  # a Python int: Qt's int is 32-bit

    def __init__(self) -> None:
        super().__init__()
        self.setValidator(QRegularExpressionValidator(QRegularExpression(r"-1|\d{0,20}|[Rr]andom"), self))
        self.setPlaceholderText("Random")
        self.setToolTip("Seed of the first image (batch items use seed+1, seed+2, …); empty or Random picks one and records it")
        self.textChanged.connect(lambda _t: self.valueChanged.emit(self.seed()))

    def seed(self) -> int:
        text = self.text().strip()
        if not text.isdigit():
            return -1
        return min(int(text), SEED_MAX)

    def value(self) -> int:
        return self.seed()

    def setValue(self, seed: int) -> None:  # noqa: N802 - the spin boxes' name
        self.setText("Random" if seed < 0 else str(int(seed)))


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

        # prompt ------------------------------------------------------------------------------
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

        # sampling ------------------------------------------------------------------------------
        self.scheduler = QComboBox()  # the sampler; with `schedule`, the pair params carry ("Euler a Karras")
        for name in SAMPLER_NAMES:
            self.scheduler.addItem(name, name)
        self.schedule = QComboBox()
        for name in SCHEDULE_TYPES:
            self.schedule.addItem(name, name)
        self.schedule.setToolTip("Schedule type: the noise levels the sampler steps through (Automatic: the sampler's own)")
        self.steps = QSpinBox()
        self.steps.setRange(1, 150)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 30.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(1)
        self.guidance.setToolTip("Classifier-free guidance (CFG): how strictly the prompt is followed")
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.01, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.strength.setToolTip("Denoising strength: 1 repaints completely, lower keeps more of the original")

        # seed and batch ----------------------------------------------------------------------
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
        self.batch = QSpinBox()
        self.batch.setRange(1, 8)
        self.batch.setToolTip("Images per run: each becomes a candidate to compare")

        # resolution ---------------------------------------------------------------------------
        self.auto_size = QCheckBox("Auto")
        self.auto_size.setToolTip("Derive the model resolution from the masked region (multiple of 8)")
        self.width_box = QSpinBox()
        self.height_box = QSpinBox()
        for box in (self.width_box, self.height_box):
            box.setRange(256, 2048)
            box.setSingleStep(8)
            box.setValue(512)
            box.setSuffix(" px")
            box.editingFinished.connect(lambda b=box: b.setValue(round(b.value() / 8) * 8))

        # mask and area -------------------------------------------------------------------------
        self.mask_blur = QSpinBox()
        self.mask_blur.setRange(0, 64)
        self.mask_blur.setSuffix(" px")
        self.mask_blur.setToolTip("Feather width of the blend between result and original")
        self.mask_grow = QSpinBox()
        self.mask_grow.setRange(0, 64)
        self.mask_grow.setSuffix(" px")
        self.inpaint_area = _combo(AREA_LABELS)
        self.padding = QSpinBox()
        self.padding.setRange(0, 256)
        self.padding.setSuffix(" px")
        self.padding.setToolTip("Context around the mask that the model sees (only masked)")
        self.masked_content = _combo(CONTENT_LABELS)
        self.color_match = _combo(COLOR_MATCH_LABELS)
        self.color_match.setToolTip("Match tone and colour of the generated area to its surround, so no seam shows")

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
        def form(title: str) -> tuple[QGroupBox, QFormLayout]:
            box = QGroupBox(title)
            layout = QFormLayout(box)
            layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            layout.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return box, layout

        prompt_box = QGroupBox("Prompt")
        pl = QVBoxLayout(prompt_box)
        pl.addWidget(self.prompt)
        neg_label = QLabel("Negative prompt")
        neg_label.setStyleSheet("color: palette(mid);")
        pl.addWidget(neg_label)
        pl.addWidget(self.negative)
        mode_row = QFormLayout()
        mode_row.addRow("Mode", self.mode)
        pl.addLayout(mode_row)

        sampling, sl = form("Sampling")
        sl.addRow("Sampler", self.scheduler)
        sl.addRow("Schedule type", self.schedule)
        sl.addRow("Steps", self.steps)
        sl.addRow("Guidance", self.guidance)
        sl.addRow("Strength", self.strength)
        seed_row = QHBoxLayout()
        seed_row.setSpacing(2)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        seed_row.addWidget(self.reuse_seed)
        seed_row.addWidget(self.lock_seed)
        sl.addRow("Seed", seed_row)
        sl.addRow("Batch size", self.batch)
        size_row = QHBoxLayout()
        size_row.setSpacing(4)
        size_row.addWidget(self.auto_size)
        size_row.addWidget(self.width_box, 1)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_box, 1)
        sl.addRow("Resolution", size_row)

        mask, ml = form("Mask and area")
        ml.addRow("Mask blur", self.mask_blur)
        ml.addRow("Mask grow", self.mask_grow)
        ml.addRow("Inpaint area", self.inpaint_area)
        ml.addRow("Padding", self.padding)
        ml.addRow("Masked content", self.masked_content)
        ml.addRow("Colour match", self.color_match)

        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(4, 4, 4, 4)
        for w in (prompt_box, self.networks, sampling, mask, self.guides):
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

    # -- reading and writing ------------------------------------------------------------------
    def params(self) -> GenerationParams:
        """The parameters as edited (not validated: see `validation_message`)."""
        auto = self.auto_size.isChecked()
        return GenerationParams(
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
        )

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
        """The model chosen in the picker: decides which fields matter (classical methods ignore
        prompt, scheduler, steps…, which are greyed out rather than hidden, so nothing jumps)."""
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
        self.prompt.setPlaceholderText(
            "Classical inpainting ignores the prompt: choose a diffusion model to use one"
            if classical
            else "What should appear in the masked area, e.g. “a wooden bench, evening light”"
        )
        self._on_changed()

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
        """Why the current values cannot run, or "" when they can."""
        params = self.params()
        try:
            params.validate()
        except ParamError as exc:
            return str(exc)
        if not self._classical and not params.prompt:
            return "Write a prompt: a diffusion model needs one (or choose a classical method)."
        if self._classical and params.mode == "img2img":
            return "Image to image needs a diffusion model: choose one, or switch the mode to Inpaint."
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
