"""The call window: who, a timer, mute, hang up, devices, and how the line is doing.

It follows one call of a `CallController` (through its `CallBridge`): ringing out,
ringing in (accept / decline), connecting, in call, reconnecting, ended. While the call
runs, the path (direct, through the server's relay, over TCP) and the loss, late and
jitter of the last few seconds (`CallEngine.stats()`) are on screen, refreshed twice a
second; the bars drop to none within a second of an outage. Before the call starts the
window says in a sentence what the sound devices cannot do (no microphone: you can
still answer and listen). The microphone and loudspeaker can be chosen here, also in the
middle of a call. When the call ends, the window says why and closes a moment later.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QRectF, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QKeySequence, QPainter
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QShortcut,
    QVBoxLayout,
    QWidget,
)

from messenger.client.calls import controller as calls
from messenger.client.ui import style
from messenger.client.ui.messages import describe_call, describe_call_end, format_duration
from messenger.client.ui.widgets import Avatar

CALL_STYLE = """
QWidget#callwindow { background: qlineargradient(x1:0, y1:0, x2:0, y2:1,
    stop:0 #1e293b, stop:1 #0f172a); }
QWidget#callwindow QLabel, QWidget#callwindow QCheckBox { color: #e2e8f0; }
QLabel#peer { font-size: 18pt; font-weight: 600; color: white; }
QLabel#callstate { font-size: 12pt; color: #cbd5e1; }
QLabel#chip { background: #334155; color: #e2e8f0; border-radius: 10px; padding: 3px 10px;
    font-weight: 600; }
QLabel#counter { color: #94a3b8; font-size: 8pt; }
QLabel#value { color: #f1f5f9; font-weight: 600; font-size: 12pt; }
QLabel#warning { color: #fbbf24; }
QWidget#panel { background: rgba(255, 255, 255, 18); border-radius: 12px; }
QPushButton { border-radius: 22px; padding: 10px 18px; font-weight: 600; }
QPushButton#mute { background: #334155; color: white; border: 1px solid #475569; }
QPushButton#mute:checked { background: #f1f5f9; color: #0f172a; }
"""

PATH_WORDS = {"direct": "Direct", "relay": "Relay", "connecting": "Finding a path…"}
PATH_TIPS = {"direct": "Audio goes straight between the two computers.",
             "relay": "Audio goes through the server's relay (no direct path).",
             "connecting": "Looking for a path; nothing is heard until audio flows both"
                           " ways."}
QUALITY_TIPS = {0: "No audio from the other side right now.", 1: "Poor line",
                2: "Fair line", 3: "Good line"}


def quality_level(stats: Any) -> int:
    """0 (no audio now) to 3 (good): the engine's reading of the last few seconds."""
    if stats is None or not getattr(stats, "audio_received", 0):
        return 0
    return int(getattr(stats, "quality", 0))


class QualityBars(QWidget):
    """Three bars, like a phone's signal indicator."""

    COLOURS = {0: "#64748b", 1: "#ef4444", 2: "#f59e0b", 3: "#22c55e"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = 0
        self.setFixedSize(26, 20)

    def set_level(self, level: int) -> None:
        if level != self.level:
            self.level = level
            self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setPen(Qt.NoPen)
        for bar in range(3):
            height = 6 + bar * 6
            on = bar < self.level
            painter.setBrush(QColor(self.COLOURS[self.level] if on else "#475569"))
            painter.drawRoundedRect(QRectF(bar * 9, 20 - height, 6, height), 2, 2)


class CallWindow(QWidget):
    CLOSE_DELAY = 2.5          # seconds the ended call stays on screen
    MIN_WIDTH, MIN_HEIGHT = 360, 500

    closed = pyqtSignal()

    def __init__(self, controller: Any, bridge: Any, me: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.Window)
        self.controller = controller
        self.me = me
        self.finished = False            # this window's call ended (a new call: new window)
        self.setObjectName("callwindow")
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setStyleSheet(CALL_STYLE)
        self.setMinimumSize(self.MIN_WIDTH, self.MIN_HEIGHT)
        self.resize(400, 560)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(26, 30, 26, 26)
        layout.setSpacing(10)

        self.avatar = Avatar("", 104)
        layout.addWidget(self.avatar, 0, Qt.AlignHCenter)
        self.peer_label = style.named(QLabel(""), "peer")
        self.peer_label.setAlignment(Qt.AlignCenter)
        layout.addWidget(self.peer_label)
        self.state_label = style.named(QLabel(""), "callstate")
        self.state_label.setAlignment(Qt.AlignCenter)
        self.state_label.setWordWrap(True)
        layout.addWidget(self.state_label)
        layout.addSpacing(6)
        layout.addWidget(self._quality_panel())
        self.audio_warning = style.named(QLabel(""), "warning")
        self.audio_warning.setWordWrap(True)
        self.audio_warning.hide()
        layout.addWidget(self.audio_warning)
        layout.addLayout(self._devices())
        layout.addStretch(1)
        layout.addLayout(self._buttons())

        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self.refresh)
        self._close_timer = QTimer(self)
        self._close_timer.setSingleShot(True)
        self._close_timer.timeout.connect(self.close)
        QShortcut(QKeySequence(Qt.Key_Return), self, activated=self._enter)
        QShortcut(QKeySequence(Qt.Key_Enter), self, activated=self._enter)
        QShortcut(QKeySequence("Ctrl+M"), self, activated=self.mute_button.toggle)
        QShortcut(QKeySequence("Ctrl+D"), self, activated=self.hang_up)
        self._bridge = bridge
        bridge.status.connect(self.show_status)
        if controller.status.state in (calls.OUTGOING, calls.INCOMING):
            # before the call starts: say what the sound devices cannot do
            self._show_audio_problem(controller.check_devices().problem)
        self.show_status(controller.status)

    def _quality_panel(self) -> QWidget:
        panel = style.named(QWidget(), "panel")
        panel.setAttribute(Qt.WA_StyledBackground, True)
        grid = QGridLayout(panel)
        grid.setContentsMargins(16, 12, 16, 12)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(10)
        top = QHBoxLayout()
        self.path_chip = style.named(QLabel(""), "chip")
        top.addWidget(self.path_chip)
        top.addStretch(1)
        self.bars = QualityBars()
        top.addWidget(self.bars)
        grid.addLayout(top, 0, 0, 1, 3)
        self.values: dict[str, QLabel] = {}
        for position, (key, title) in enumerate((
                ("loss", "loss"), ("late", "late"), ("jitter", "jitter"),
                ("rtt", "round trip"), ("sent", "packets sent"),
                ("received", "packets received"))):
            cell = QVBoxLayout()
            cell.setSpacing(0)
            value = style.named(QLabel("—"), "value")
            value.setAlignment(Qt.AlignCenter)
            caption = style.named(QLabel(title), "counter")
            caption.setAlignment(Qt.AlignCenter)
            cell.addWidget(value)
            cell.addWidget(caption)
            grid.addLayout(cell, 1 + position // 3, position % 3)
            self.values[key] = value
        self.panel = panel
        return panel

    def _devices(self) -> QGridLayout:
        """Microphone and loudspeaker choosers (the system default first)."""
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setColumnStretch(1, 1)                     # the choosers take the width
        self.input_choice = QComboBox()
        self.output_choice = QComboBox()
        inputs, outputs = self.controller.list_devices()
        for combo, devices, current in ((self.input_choice, inputs,
                                         self.controller.input_device),
                                        (self.output_choice, outputs,
                                         self.controller.output_device)):
            combo.addItem("System default", None)
            for device in devices:
                combo.addItem(device.name, device.name)
            index = combo.findData(current)
            combo.setCurrentIndex(max(0, index))
            combo.currentIndexChanged.connect(self._device_chosen)
        for row, (title, combo) in enumerate((("Microphone", self.input_choice),
                                              ("Speaker", self.output_choice))):
            caption = style.named(QLabel(title), "counter")
            grid.addWidget(caption, row, 0)
            grid.addWidget(combo, row, 1)
        self.processing_box = QCheckBox("Echo and noise control")
        self.processing_box.setToolTip("Echo cancellation, noise suppression and automatic"
                                       " gain on your microphone")
        self.processing_box.setChecked(bool(getattr(self.controller.processing, "any",
                                                    False)))
        self.processing_box.toggled.connect(self.controller.set_processing)
        grid.addWidget(self.processing_box, 2, 0, 1, 2)
        return grid

    def _device_chosen(self, _: int = 0) -> None:
        problem = self.controller.set_devices(self.input_choice.currentData(),
                                              self.output_choice.currentData())
        self._show_audio_problem(problem)

    def _show_audio_problem(self, problem: str) -> None:
        self.audio_warning.setText(problem)
        self.audio_warning.setVisible(bool(problem))
        self._fit()

    def _fit(self) -> None:
        """Be at least as tall as the content needs at this width. A top-level window's
        minimum ignores height-for-width, so a wrapped sentence (the sound devices'
        warning) would otherwise squeeze the counters into each other."""
        layout = self.layout()
        layout.activate()
        need = layout.totalHeightForWidth(self.width())
        self.setMinimumHeight(max(self.MIN_HEIGHT, need))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._fit()              # narrower: the sentence wraps onto more lines

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(14)
        self.accept_button = style.set_kind(QPushButton("Accept"), "success")
        self.accept_button.clicked.connect(self.accept)
        self.decline_button = style.set_kind(QPushButton("Decline"), "danger")
        self.decline_button.clicked.connect(self.decline)
        self.mute_button = QPushButton("Mute")
        self.mute_button.setObjectName("mute")
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip("Mute your microphone (Ctrl+M)")
        self.mute_button.toggled.connect(self.set_muted)
        self.hangup_button = style.set_kind(QPushButton("Hang up"), "danger")
        self.hangup_button.setToolTip("End the call (Ctrl+D)")
        self.hangup_button.clicked.connect(self.hang_up)
        for button in (self.accept_button, self.decline_button, self.mute_button,
                       self.hangup_button):
            button.setMinimumHeight(44)
            row.addWidget(button)
        return row

    # -- following the call ---------------------------------------------------------------

    def show_status(self, status: calls.CallStatus) -> None:
        if self.finished:
            return
        peer = status.peer or ""
        self.avatar.set_name(peer)
        self.peer_label.setText(peer)
        state = status.state
        self.setWindowTitle({calls.INCOMING: f"Incoming call from {peer}",
                             calls.OUTGOING: f"Calling {peer}"}.get(
            state, f"Call with {peer}") + " — Messenger")
        ringing_in = state == calls.INCOMING
        live = status.live
        self.accept_button.setVisible(ringing_in)
        self.decline_button.setVisible(ringing_in)
        self.mute_button.setVisible(live and not ringing_in)
        self.hangup_button.setVisible(live and not ringing_in)
        self.accept_button.setDefault(ringing_in)
        self.panel.setVisible(state in (calls.CONNECTING, calls.ACTIVE, calls.RECONNECTING,
                                        calls.ENDED)
                              and self.controller.stats() is not None)
        if state in (calls.CONNECTING, calls.ACTIVE, calls.RECONNECTING):
            if not self._timer.isActive():
                self._timer.start()
        else:
            self._timer.stop()
        if state == calls.ENDED:
            self.finished = True
            self.state_label.setText(describe_call_end(status, self.me))
            self._close_timer.start(int(self.CLOSE_DELAY * 1000))
        self.refresh()
        self._fit()

    def refresh(self) -> None:
        status = self.controller.status
        if self.finished and status.state != calls.ENDED:
            return                      # a newer call has its own window
        if status.state == calls.ACTIVE:
            self.state_label.setText(format_duration(self.controller.elapsed()))
        elif status.state == calls.RECONNECTING:
            self.state_label.setText(f"Reconnecting… {format_duration(self.controller.elapsed())}")
        elif status.state != calls.ENDED:
            self.state_label.setText(describe_call(status))
        stats = self.controller.stats()
        if stats is None:
            return
        if self.panel.isHidden():
            self.panel.show()
            self._fit()
        path = stats.path
        words = PATH_WORDS.get(path, path)
        self.path_chip.setText(f"{words} · {stats.codec.upper()}" if stats.codec else words)
        self.path_chip.setToolTip(PATH_TIPS.get(path, ""))
        level = quality_level(stats) if status.state != calls.CONNECTING else 0
        self.bars.set_level(level)
        self.bars.setToolTip(QUALITY_TIPS.get(level, ""))
        if stats.over_tcp and path == "relay":
            self.path_chip.setText(self.path_chip.text() + " · TCP")
        self.values["loss"].setText(f"{stats.quality_loss_percent:.1f} %")
        self.values["loss"].setToolTip(f"last few seconds; {stats.lost} packets lost in"
                                       " all")
        self.values["late"].setText(str(stats.late))
        self.values["jitter"].setText(f"{stats.jitter_ms:.1f} ms")
        self.values["rtt"].setText(f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None
                                   else "—")
        self.values["sent"].setText(str(stats.audio_sent))
        self.values["received"].setText(str(stats.audio_received))
        if stats.audio_error:
            self._show_audio_problem(stats.audio_error)

    # -- the user's buttons ---------------------------------------------------------------

    def _enter(self) -> None:
        if self.controller.status.state == calls.INCOMING and not self.finished:
            self.accept()

    def accept(self) -> None:
        self.controller.accept().addErrback(lambda _: None)

    def decline(self) -> None:
        self.controller.decline().addErrback(lambda _: None)

    def hang_up(self) -> None:
        self.controller.hangup().addErrback(lambda _: None)

    def set_muted(self, muted: bool) -> None:
        self.mute_button.setText("Unmute" if muted else "Mute")
        self.controller.set_muted(muted)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        """Closing the window ends a live call: no call runs without its window."""
        if self.controller.status.live:
            self.controller.hangup().addErrback(lambda _: None)
        self._timer.stop()
        self._close_timer.stop()
        try:
            self._bridge.status.disconnect(self.show_status)
        except TypeError:
            pass                        # already disconnected
        super().closeEvent(event)
        self.closed.emit()
