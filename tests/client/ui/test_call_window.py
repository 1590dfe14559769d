"""Calls between two desktops on a real server: the call windows ring, connect, show the
peer, the timer, the path and the counters of CallEngine.stats(), and close on both sides
when either hangs up. Audio runs through real CallEngines on loopback with
FakeAudioDevice (no sound card)."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtTest import QTest
from PyQt5.QtWidgets import QApplication
from twisted.internet import defer

from messenger.client.calls.audio import FakeAudioDevice
from messenger.client.calls.codec import FRAME_BYTES
from messenger.client.ui.call_window import CallWindow, quality_level
from tests.client.ui.helpers import DesktopTestCase, chat_item, click, wait_for


class CallWindowBase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.patch(CallWindow, "CLOSE_DELAY", 0.3)
        yield self.start_server()
        tone = bytes(range(256)) * (FRAME_BYTES * 500 // 256)
        self.alice = yield self.register(
            "alice", desktop=self.make_desktop(audio=FakeAudioDevice(tone)))
        self.bob = yield self.register(
            "bob", desktop=self.make_desktop(audio=FakeAudioDevice(tone)))
        yield self.add_contact(self.alice, "bob")
        yield self.add_contact(self.bob, "alice")

    @defer.inlineCallbacks
    def ring(self) -> Any:
        """Alice opens bob's chat and clicks Call; both call windows appear."""
        main = self.alice.main_window
        pane = main.open_chat("bob")
        self.assertTrue(pane.call_button.isEnabled())
        click(pane.call_button)
        yield wait_for(lambda: main.call_window is not None, what="alice's call window")
        yield wait_for(lambda: self.bob.main_window.call_window is not None,
                       what="bob's call window")
        return main.call_window, self.bob.main_window.call_window



class CallWindowTests(CallWindowBase):
    @defer.inlineCallbacks
    def test_call_shows_peer_counters_and_path_and_hangs_up_on_both(self) -> Any:
        """Bob accepts the ring; both windows show the peer, a running timer, the path
        and packet counters from the engines; bob's hang-up closes both windows."""
        mine, theirs = yield self.ring()
        self.assertEqual(mine.peer_label.text(), "bob")
        self.assertEqual(mine.state_label.text(), "Calling…")
        self.assertTrue(mine.hangup_button.isVisibleTo(mine))
        self.assertEqual(theirs.peer_label.text(), "alice")
        self.assertEqual(theirs.state_label.text(), "Incoming call")
        self.assertTrue(theirs.accept_button.isVisibleTo(theirs))
        self.assertTrue(theirs.decline_button.isVisibleTo(theirs))
        self.assertIn(("Incoming call", "alice is calling you."), self.bob.notifier.shown)
        click(theirs.accept_button)
        yield wait_for(lambda: self.alice.calls.status.state == "active"
                       and self.bob.calls.status.state == "active", what="both active")
        self.assertFalse(theirs.accept_button.isVisibleTo(theirs))
        yield wait_for(lambda: int(mine.values["received"].text() or 0) > 20
                       if mine.values["received"].text().isdigit() else False,
                       what="packets counted on alice's side")
        yield wait_for(lambda: mine.state_label.text() == "0:01", what="the timer")
        stats = self.alice.calls.stats()
        self.assertIn(mine.path_chip.text().split(" ·")[0], ("Direct", "Relay"))
        self.assertEqual(mine.path_chip.text().split(" ·")[0],
                         {"direct": "Direct", "relay": "Relay"}[stats.path])
        self.assertEqual(mine.values["late"].text(), str(stats.late))
        self.assertRegex(mine.values["loss"].text(), r"^\d+\.\d %$")
        self.assertRegex(mine.values["jitter"].text(), r"^\d+\.\d ms$")
        self.assertGreater(int(theirs.values["sent"].text()), 20)
        self.assertTrue(any(any(frame) for frame in self.bob.audio.played))
        click(theirs.hangup_button)
        yield wait_for(lambda: self.alice.calls.status.state == "ended", what="ended")
        self.assertEqual(mine.state_label.text(), "bob hung up.")
        self.assertEqual(theirs.state_label.text(), "Call ended.")
        yield wait_for(lambda: not mine.isVisible() and not theirs.isVisible(),
                       what="both windows closed")
        self.assertFalse(self.alice.calls.engine.running)
        self.assertFalse(self.bob.calls.engine.running)

    @defer.inlineCallbacks
    def test_decline(self) -> Any:
        """Bob declines: alice's window says so and both close; no media started."""
        mine, theirs = yield self.ring()
        click(theirs.decline_button)
        yield wait_for(lambda: mine.state_label.text() == "bob declined the call.",
                       what="declined")
        yield wait_for(lambda: not mine.isVisible() and not theirs.isVisible(),
                       what="closed")
        self.assertIsNone(self.alice.calls.engine)

    @defer.inlineCallbacks
    def test_mute_and_closing_the_window_hangs_up(self) -> Any:
        """Enter accepts; mute reaches the engine; closing a live call's window hangs up
        for both."""
        mine, theirs = yield self.ring()
        QApplication.setActiveWindow(theirs)
        QTest.keyClick(theirs, Qt.Key_Return)                 # Enter accepts
        yield wait_for(lambda: self.alice.calls.status.state == "active", what="active")
        click(mine.mute_button)
        self.assertTrue(self.alice.calls.engine.muted)
        self.assertEqual(mine.mute_button.text(), "Unmute")
        mine.close()
        yield wait_for(lambda: self.bob.calls.status.state == "ended", what="bob's end")
        yield wait_for(lambda: not theirs.isVisible(), what="bob's window closed")

    @defer.inlineCallbacks
    def test_calling_an_offline_contact_says_so(self) -> Any:
        """A call to a contact who went offline ends at once with the server's reason."""
        yield self.bob.client.stop()
        main = self.alice.main_window
        yield wait_for(lambda: chat_item(self.alice, "bob").status == "offline",
                       what="offline")
        main.start_call("bob")
        yield wait_for(lambda: main.call_window is not None, what="window")
        window = main.call_window
        yield wait_for(lambda: "offline" in window.state_label.text(), what="the reason")
        self.assertTrue(window.state_label.text().startswith("The call could not start"))


class DeviceAndLineTests(CallWindowBase):
    def assert_laid_out(self, window: Any) -> None:
        """With the sentence about the sound devices wrapped over several lines, the
        window is tall enough that nothing is squeezed: the counters' panel, the warning
        and the buttons get their full height and do not overlap."""
        QApplication.processEvents()
        self.assertGreaterEqual(window.panel.height(), window.panel.sizeHint().height())
        warning = window.audio_warning
        self.assertGreaterEqual(warning.height(), warning.heightForWidth(warning.width()))
        for above, below in ((window.panel, warning), (warning, window.input_choice),
                             (window.processing_box, window.hangup_button)):
            self.assertLessEqual(above.mapTo(window, above.rect().bottomLeft()).y(),
                                 below.mapTo(window, below.rect().topLeft()).y())
        window.resize(window.MIN_WIDTH, window.MIN_HEIGHT)   # narrower: more lines
        QApplication.processEvents()
        self.assertGreaterEqual(warning.height(), warning.heightForWidth(warning.width()))
        self.assertGreaterEqual(window.panel.height(), window.panel.sizeHint().height())

    @defer.inlineCallbacks
    def test_no_microphone_said_before_answering_and_reconnecting_shown(self) -> Any:
        """Without a microphone the ringing window says so in a sentence (not PortAudio's
        error number) and the call can still be answered; a quiet line shows
        "Reconnecting…"; the device choosers list the system default."""
        from messenger.client.calls import audio
        for desktop in (self.alice, self.bob):
            self.patch(desktop.calls, "check_devices",
                       lambda: audio.DeviceCheck(False, True, audio.NO_MICROPHONE, "x"))
        mine, theirs = yield self.ring()
        self.assertEqual(theirs.audio_warning.text(), audio.NO_MICROPHONE)
        self.assertNotIn("Errno", theirs.audio_warning.text())
        self.assertEqual(theirs.input_choice.itemText(0), "System default")
        click(theirs.accept_button)
        yield wait_for(lambda: self.bob.calls.status.state == "active", what="active")
        yield wait_for(lambda: theirs.panel.isVisible(), what="the counters")
        self.assert_laid_out(theirs)
        self.bob.calls._media("reconnecting", "")
        theirs.refresh()
        self.assertTrue(theirs.state_label.text().startswith("Reconnecting…"))
        self.bob.calls._media("active", "")
        self.assertTrue(theirs.processing_box.isChecked())
        self.assertIsNotNone(self.bob.calls.engine.processor)
        theirs.processing_box.setChecked(False)           # the settings switch
        self.assertIsNone(self.bob.calls.engine.processor)
        click(theirs.hangup_button)
        yield wait_for(lambda: self.alice.calls.status.state == "ended", what="ended")


class QualityTests(DesktopTestCase):
    def test_quality_level(self) -> None:
        """The bars: none before audio; otherwise the engine's reading of the last few
        seconds (0 during an outage, whatever came before)."""
        class Stats:
            def __init__(self, **values: Any) -> None:
                self.audio_received, self.quality = 100, 3
                self.__dict__.update(values)
        self.assertEqual(quality_level(None), 0)
        self.assertEqual(quality_level(Stats(audio_received=0)), 0)
        self.assertEqual(quality_level(Stats()), 3)
        self.assertEqual(quality_level(Stats(quality=0)), 0)
