"""Quitting without losing work: the window closes only after unsaved work was saved or
discarded and a running generation has stopped (``window.close_guard``).

Once the user confirmed, a running generation is cancelled (it stops within one step) and the
window closes when the worker has let go, so the thread is never destroyed while it runs and the
GUI never blocks.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QMainWindow, QMessageBox

from app.editor.session import EditorSession
from app.widgets.file_actions import FileActions
from app.widgets.window_status import WindowStatus


class CloseGuard(QObject):
    """``files`` asks the Save / Discard / Cancel question; ``window`` is closed again once
    the answer allows it."""

    def __init__(self, window: QMainWindow, session: EditorSession, files: FileActions, status: WindowStatus) -> None:
        super().__init__(window)
        self.window, self.session, self.files, self.status = window, session, files, status
        #: The user chose to quit (or a test forces it): unsaved work no longer stops the close.
        self.confirmed = False
        self._close_when_idle_armed = False
        #: The open "stop the generation and quit?" question, if any.
        self.stop_question: QMessageBox | None = None

    def may_close(self) -> bool:
        """For ``closeEvent``: True to close now; False when it asked first or waits for the run."""
        if not self.confirmed and (self.session.has_unsaved_work or self.session.generating):
            self._ask_before_close()
            return False
        if self.session.generating:
            self._close_when_idle()
            return False
        return True

    def _force_close(self) -> None:
        self.confirmed = True
        self.window.close()

    def _ask_before_close(self) -> None:
        running = " A generation is running; it will be stopped." if self.session.generating else ""
        if self.session.has_unsaved_work:
            name = self.session.display_name or "The image"
            self.files.ask_unsaved(f"{name} has changes that are not saved.{running} Save them before quitting?",
                                   self._force_close, quitting=True)
            return
        if self.stop_question is not None:
            return
        buttons = QMessageBox.StandardButton
        box = QMessageBox(QMessageBox.Icon.Question, "Generation running", "A generation is running. Stop it and quit?",
                          buttons.Yes | buttons.Cancel, self.window)
        box.button(buttons.Yes).setText("Stop and Quit")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _c, b=box: self._after_stop_question(b.clickedButton() is b.button(buttons.Yes)))
        self.stop_question = box
        box.open()

    def _after_stop_question(self, stop: bool) -> None:
        self.stop_question = None
        if stop:
            self._force_close()

    def _close_when_idle(self) -> None:
        """Cancel the run and close once the worker reports its end (within one step)."""
        self.status.message.setText("Stopping the generation before quitting…")
        self.session.cancel()
        if not self._close_when_idle_armed:
            self._close_when_idle_armed = True
            s = self.session
            for ended in (s.generation_cancelled, s.generation_finished, s.generation_failed, s.generation_dropped):
                ended.connect(lambda *_: QTimer.singleShot(0, self.window, self.window.close))
