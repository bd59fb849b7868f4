"""Generate → Generation Server…: the URL and token of an ``inpaint-studio serve`` machine whose
models the picker then lists as ``remote:`` refs (the engine still plans and composites here;
only model-sized crops travel). Test asks the server's ``/healthz`` and ``/v1/models``."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPushButton,
                               QVBoxLayout, QWidget)

from app.core.errors import UserError
from app.editor.settings import Settings
from app.service import remote

#: The Test button waits at most this long: the window is not usable meanwhile.
TEST_TIMEOUT_S = 5.0


class ServerDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generation Server")
        self.settings = settings
        url, token = settings.generation_server()
        self.url = QLineEdit(url)
        self.url.setPlaceholderText("http://gpu-box:7860 (empty = local models only)")
        self.token = QLineEdit(token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("the server's API token, if it has --tokens")
        self.test_button = QPushButton("Test")
        self.test_button.clicked.connect(self.test)
        self.result = QLabel("Generate sends only the model-sized area around the mask; your image stays here.")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models: list[str] = settings.remote_models()
        form = QFormLayout()
        form.addRow("Server URL", self.url)
        form.addRow("Token", self.token)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.result)
        layout.addWidget(buttons)

    def server_url(self) -> str:
        return self.url.text().strip().rstrip("/")

    def test(self) -> bool:
        """Ask the server; list its models on success, say what failed otherwise."""
        url = self.server_url()
        if not url.startswith(("http://", "https://")):
            self.result.setText("Give the server's address, starting with http:// or https://")
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            health = remote.get_json(url, "/healthz", self.token.text().strip() or None, timeout_s=TEST_TIMEOUT_S)
            listed = remote.get_json(url, "/v1/models", self.token.text().strip() or None, timeout_s=TEST_TIMEOUT_S)
        except UserError as exc:
            self.result.setText(f"{exc.title}: {exc.message}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        ids = [m["id"] for m in listed.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)]
        self.models = [remote.make_ref(url)] + [remote.make_ref(url, i) for i in ids]
        self.result.setText(f"Connected: default model {health.get('model')}, {len(ids)} models, "
                            f"{health.get('queue_waiting', 0)} jobs waiting.")
        return True

    def save(self) -> None:
        """Keep the server (testing it first); an empty URL goes back to local models only."""
        url = self.server_url()
        if url and not self.test():
            return
        self.settings.set_generation_server(url, self.token.text().strip(), self.models if url else [])
        self.accept()
