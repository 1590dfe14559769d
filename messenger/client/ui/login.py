"""The login window: log in or register, the server's answer in words, a busy indicator.

The window only collects what the user typed and shows what it is told: the `Desktop`
does the logging in (through the client core) and calls `set_busy`, `show_error` and
`set_idle`. Nothing here blocks: while a login is under way the spinner turns and the
Cancel button works.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client.ui import style
from messenger.client.ui.widgets import Banner, Spinner

MIN_PASSWORD = 8


class LoginWindow(QWidget):
    login_requested = pyqtSignal(str, str, bool)            # name, password, remember
    register_requested = pyqtSignal(str, str, str, str)     # name, e-mail, password, code
    settings_requested = pyqtSignal()
    cancel_requested = pyqtSignal()
    closed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("window")
        self.setWindowTitle("Messenger — Log in")
        self.setMinimumSize(420, 560)
        self.resize(460, 640)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(28, 26, 28, 22)
        outer.setSpacing(14)

        top = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(style.app_icon().pixmap(48, 48))
        top.addWidget(logo)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(style.named(QLabel("Messenger"), "title"))
        self.server_label = style.named(QLabel(""), "subtitle")
        titles.addWidget(self.server_label)
        top.addLayout(titles, 1)
        outer.addLayout(top)

        settings_row = QHBoxLayout()
        settings_row.addStretch(1)
        self.settings_button = style.set_kind(QPushButton("Server settings…"), "flat")
        self.settings_button.setCursor(Qt.PointingHandCursor)
        self.settings_button.clicked.connect(self.settings_requested)
        settings_row.addWidget(self.settings_button)
        outer.addLayout(settings_row)

        card = style.named(QWidget(), "card")
        card.setAttribute(Qt.WA_StyledBackground, True)
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(18, 12, 18, 18)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._login_tab(), "Log in")
        self.tabs.addTab(self._register_tab(), "Register")
        self.tabs.currentChanged.connect(self._tab_changed)
        card_layout.addWidget(self.tabs)
        self.banner = Banner()
        card_layout.addWidget(self.banner)
        outer.addWidget(card)

        busy = QHBoxLayout()
        self.spinner = Spinner(22)
        busy.addWidget(self.spinner)
        self.busy_label = style.named(QLabel(""), "muted")
        self.busy_label.setWordWrap(True)
        busy.addWidget(self.busy_label, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        busy.addWidget(self.cancel_button)
        outer.addLayout(busy)
        outer.addStretch(1)
        self._inputs = [self.name, self.password, self.remember, self.login_button,
                        self.reg_name, self.reg_email, self.reg_password,
                        self.reg_password2, self.reg_code, self.register_button]

    # -- the two tabs ---------------------------------------------------------------------

    @staticmethod
    def _field(layout: QVBoxLayout, label: str, widget: QWidget) -> None:
        """A label above its field (mnemonic ``&`` moves the focus there)."""
        caption = QLabel(label)
        caption.setBuddy(widget)
        layout.addWidget(caption)
        layout.addWidget(widget)
        layout.addSpacing(4)

    def _login_tab(self) -> QWidget:
        page = QWidget()
        form = QVBoxLayout(page)
        form.setContentsMargins(4, 16, 4, 4)
        form.setSpacing(4)
        self.name = QLineEdit()
        self.name.setPlaceholderText("your account name")
        self.name.setMaxLength(32)
        self._field(form, "&Account name", self.name)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.Password)
        self.password.setPlaceholderText("password")
        self._field(form, "&Password", self.password)
        self.remember = QCheckBox("&Keep me logged in on this computer")
        self.remember.setChecked(True)
        form.addWidget(self.remember)
        form.addSpacing(10)
        self.login_button = style.set_kind(QPushButton("Log in"), "primary")
        self.login_button.setDefault(True)
        self.login_button.setMinimumHeight(36)
        self.login_button.clicked.connect(self._submit_login)
        form.addWidget(self.login_button)
        form.addStretch(1)
        for edit in (self.name, self.password):
            edit.returnPressed.connect(self._submit_login)
        return page

    def _register_tab(self) -> QWidget:
        page = QWidget()
        form = QVBoxLayout(page)
        form.setContentsMargins(4, 16, 4, 4)
        form.setSpacing(4)
        self.reg_name = QLineEdit()
        self.reg_name.setPlaceholderText("3 to 32 characters")
        self.reg_name.setMaxLength(32)
        self._field(form, "Account &name", self.reg_name)
        self.reg_email = QLineEdit()
        self.reg_email.setPlaceholderText("you@example.org")
        self._field(form, "&E-mail", self.reg_email)
        passwords = QHBoxLayout()
        passwords.setSpacing(10)
        for attribute, label, hint in (("reg_password", "Pass&word",
                                        f"at least {MIN_PASSWORD} characters"),
                                       ("reg_password2", "&Repeat password", "the same again")):
            column = QVBoxLayout()
            column.setSpacing(4)
            edit = QLineEdit()
            edit.setEchoMode(QLineEdit.Password)
            edit.setPlaceholderText(hint)
            setattr(self, attribute, edit)
            self._field(column, label, edit)
            passwords.addLayout(column)
        form.addLayout(passwords)
        self.reg_code = QLineEdit()
        self.reg_code.setPlaceholderText("optional, e.g. K7QM-2XWD-PA9F-HT3C")
        self._field(form, "Premium &code (lets you post to everyone)", self.reg_code)
        form.addSpacing(6)
        self.register_button = style.set_kind(QPushButton("Create account"), "primary")
        self.register_button.setMinimumHeight(36)
        self.register_button.clicked.connect(self._submit_register)
        form.addWidget(self.register_button)
        form.addStretch(1)
        for edit in (self.reg_name, self.reg_email, self.reg_password, self.reg_password2,
                     self.reg_code):
            edit.returnPressed.connect(self._submit_register)
        return page

    def _tab_changed(self, index: int) -> None:
        self.banner.clear_message()
        (self.name if index == 0 else self.reg_name).setFocus()

    # -- what the Desktop tells the window ------------------------------------------------

    def set_server(self, address: str) -> None:
        self.server_label.setText(f"Server {address}" if address else "No server chosen")

    def set_account(self, name: str) -> None:
        if name and not self.name.text():
            self.name.setText(name)

    @property
    def busy(self) -> bool:
        return self.spinner.spinning

    def set_busy(self, text: str) -> None:
        """Something is under way: spinner, a line saying what, Cancel; inputs wait."""
        self.banner.clear_message()
        self.busy_label.setText(text)
        self.spinner.start()
        self.cancel_button.show()
        for widget in self._inputs:
            widget.setEnabled(False)

    def update_busy(self, text: str) -> None:
        if self.busy:
            self.busy_label.setText(text)

    def set_idle(self, keep_password: bool = False) -> None:
        """Nothing under way; the password fields are cleared unless ``keep_password``
        (the server was only unreachable: the password was never judged)."""
        self.spinner.stop()
        self.busy_label.setText("")
        self.cancel_button.hide()
        for widget in self._inputs:
            widget.setEnabled(True)
        if not keep_password:
            self.password.clear()
            self.reg_password.clear()
            self.reg_password2.clear()

    def show_error(self, text: str, keep_password: bool = False) -> None:
        self.set_idle(keep_password)
        self.banner.show_error(text)
        if keep_password and self.tabs.currentIndex() == 0 and self.password.text():
            self.login_button.setFocus()
        else:
            self._focus_first_empty()

    def show_info(self, text: str) -> None:
        self.banner.show_info(text)

    def _focus_first_empty(self) -> None:
        if self.tabs.currentIndex() == 0:
            (self.password if self.name.text() else self.name).setFocus()
        else:
            self.reg_name.setFocus()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        super().closeEvent(event)
        self.closed.emit()

    # -- submitting -----------------------------------------------------------------------

    def _submit_login(self) -> None:
        if self.busy:
            return
        name, password = self.name.text().strip(), self.password.text()
        if not name or not password:
            self.banner.show_error("Enter your account name and your password.")
            self._focus_first_empty()
            return
        self.login_requested.emit(name, password, self.remember.isChecked())

    def _submit_register(self) -> None:
        if self.busy:
            return
        name = self.reg_name.text().strip()
        email = self.reg_email.text().strip()
        password, again = self.reg_password.text(), self.reg_password2.text()
        problem = None
        if not 3 <= len(name) <= 32:
            problem, focus = "Choose an account name of 3 to 32 characters.", self.reg_name
        elif "@" not in email or email.startswith("@") or email.endswith("@"):
            problem, focus = "Enter your e-mail address (like you@example.org).", \
                self.reg_email
        elif len(password) < MIN_PASSWORD:
            problem, focus = (f"Choose a password of at least {MIN_PASSWORD} characters.",
                              self.reg_password)
        elif password != again:
            problem, focus = "The two passwords differ. Type the same password twice.", \
                self.reg_password2
        if problem is not None:
            self.banner.show_error(problem)
            focus.setFocus()
            return
        self.register_requested.emit(name, email, password, self.reg_code.text().strip())
