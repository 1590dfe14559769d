"""Server settings: address, shared-secret file, TLS, and trusting a new server key."""

from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.settings import DesktopSettings
from messenger.client.ui.widgets import Banner


class SettingsDialog(QDialog):
    """Edits `DesktopSettings`; ``applied(settings, trust_new_key)`` on OK."""

    applied = pyqtSignal(object, bool)

    def __init__(self, settings: DesktopSettings, parent: QWidget | None = None,
                 key_changed: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Server settings — Messenger")
        self.setMinimumWidth(640)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 18)
        layout.setSpacing(12)
        heading = style.named(QLabel("Server settings"), "heading")
        layout.addWidget(heading)
        hint = style.named(QLabel("Your server administrator gives you the address and the"
                                  " shared-secret file."), "muted")
        hint.setWordWrap(True)
        layout.addWidget(hint)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight | Qt.AlignVCenter)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(10)
        self.server = QLineEdit(settings.server)
        self.server.setPlaceholderText("chat.example.org:7777")
        form.addRow("Server &address", self.server)
        self.secret_file = QLineEdit(settings.secret_file)
        self.secret_file.setPlaceholderText("/path/to/secret")
        form.addRow("Shared &secret file", self._with_browse(self.secret_file,
                                                              "Choose the shared-secret file"))
        self.tls = QCheckBox("Connect with &TLS")
        self.tls.setToolTip("Use the server's TLS port in the address above.")
        self.tls.setChecked(settings.tls)
        form.addRow("", self.tls)
        self.ca_file = QLineEdit(settings.ca_file)
        self.ca_file.setPlaceholderText("optional: trusted CA certificates (PEM)")
        form.addRow("TLS &CA file", self._with_browse(self.ca_file, "Choose a CA file"))
        self.pin_cert = QLineEdit(settings.pin_cert)
        self.pin_cert.setPlaceholderText("optional: exactly this server certificate (PEM)")
        form.addRow("TLS &pinned certificate", self._with_browse(self.pin_cert,
                                                                  "Choose the certificate"))
        self.trust_new_key = QCheckBox("Trust the server's &new key on the next connection")
        self.trust_new_key.setToolTip("Only after comparing the new fingerprint with the one"
                                      " your administrator published.")
        self.trust_new_key.setVisible(key_changed)
        form.addRow("", self.trust_new_key)
        layout.addLayout(form)

        self.banner = Banner()
        layout.addWidget(self.banner)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.Ok)
        style.set_kind(self.save_button, "primary")
        self.save_button.setText("Save")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.tls.toggled.connect(self._tls_toggled)
        self._tls_toggled(settings.tls)
        self._settings = settings

    def _with_browse(self, edit: QLineEdit, title: str) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(lambda: self._browse(edit, title))
        row.addWidget(button)
        return box

    def _browse(self, edit: QLineEdit, title: str) -> None:
        dialog = QFileDialog(self, title, edit.text())
        dialog.setFileMode(QFileDialog.ExistingFile)
        dialog.fileSelected.connect(edit.setText)
        dialog.open()

    def _tls_toggled(self, on: bool) -> None:
        self.ca_file.setEnabled(on)
        self.pin_cert.setEnabled(on)

    def settings(self) -> DesktopSettings:
        return self._settings.with_changes(
            server=self.server.text().strip(), secret_file=self.secret_file.text().strip(),
            tls=self.tls.isChecked(), ca_file=self.ca_file.text().strip(),
            pin_cert=self.pin_cert.text().strip())

    def _accept(self) -> None:
        settings = self.settings()
        try:
            settings.host_port  # noqa: B018 (parses the address)
        except ValueError:
            self.banner.show_error("That server address cannot be used. Write it as"
                                   " host:port, for example chat.example.org:7777.")
            self.server.setFocus()
            return
        if settings.ca_file and settings.pin_cert:
            self.banner.show_error("Give either a CA file or a pinned certificate, not"
                                   " both.")
            return
        self.applied.emit(settings, self.trust_new_key.isVisible()
                          and self.trust_new_key.isChecked())
        self.accept()
