"""The seed field of the parameters panel: a line edit, because a spin box cannot hold a seed."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QLineEdit

from app.core.params import SEED_MAX


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
