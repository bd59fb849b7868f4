"""A push button with its tooltip and action in one call: panels build many of them."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QPushButton


def push_button(text: str, tip: str, on_click: Callable[[], object] | None = None) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    if on_click is not None:
        button.clicked.connect(lambda _checked=False: on_click())
    return button
