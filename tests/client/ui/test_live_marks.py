"""What the desktop shows of the other side as it happens (issue 15), real desktops on a
real server: ticks from stored to delivered to read, "read by N" in a group with the
names on hover, "bob is typing…" in the header, read receipts turned off, and messages
left in the outbox when the program closed delivered once after it starts again."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.client.ui.helpers import DesktopTestCase, chat_item, type_into, wait_for


def own_footers(pane: Any) -> list[str]:
    return [pane.view.bubbles.footer(entry).split("  ", 1)[-1]
            for entry in pane.model.entries() if entry.own]


class LiveMarksTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        for desktop, other in ((self.alice, "bob"), (self.bob, "alice")):
            yield desktop.client.add_contact(other)
            desktop.conversations.reload()
            yield wait_for(lambda d=desktop, o=other: (item := chat_item(d, o)) is not None
                           and item.is_contact, what="a contact")


class TickTests(LiveMarksTestCase):
    @defer.inlineCallbacks
    def test_ticks_turn_from_stored_to_delivered_to_read(self) -> Any:
        """Alice's message shows ✓ when stored, ✓✓ once bob's client has it, and
        "✓✓ read" when bob opens the chat."""
        pane = self.alice.main_window.open_chat("bob")
        self.bob.main_window.go_back()
        pane.compose.setPlainText("did you get this?")
        pane.send()
        yield wait_for(lambda: own_footers(pane) in (["✓"], ["✓✓"]), what="stored")
        yield wait_for(lambda: own_footers(pane) == ["✓✓"], what="delivered")
        self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: own_footers(pane) == ["✓✓ read"], what="read")

    @defer.inlineCallbacks
    def test_read_by_n_in_a_group_with_names_on_hover(self) -> Any:
        """In a group the footer counts the members who read it; hovering names them."""
        carol = yield self.register("carol")
        reply = yield self.alice.client.group_create("Team", members=["bob", "carol"])
        group_id = reply["group"]["group_id"]
        pane = self.alice.main_window.open_group(group_id)
        pane.compose.setPlainText("standup in 5")
        pane.send()
        yield wait_for(lambda: own_footers(pane) == ["✓✓"], what="delivered")
        entry = [e for e in pane.model.entries() if e.own][0]
        yield wait_for(lambda: pane.tooltip_for(entry) == "Delivered to bob, carol",
                       what="delivered to both")
        yield wait_for(lambda: f"#{group_id}" in self.bob.conversations.model.keys(),
                       what="bob has the group")
        self.bob.main_window.open_key(f"#{group_id}")
        yield wait_for(lambda: own_footers(pane) == ["✓✓ read by 1"], what="read by bob")
        self.assertEqual(pane.tooltip_for(entry), "Read by bob\nDelivered to carol")
        carol.main_window.open_key(f"#{group_id}")
        yield wait_for(lambda: own_footers(pane) == ["✓✓ read by 2"], what="by both")

    @defer.inlineCallbacks
    def test_read_receipts_turned_off(self) -> Any:
        """Bob turns read receipts off in Settings: alice sees her message delivered,
        never read, although bob opened it."""
        dialog = self.bob.open_preferences()
        yield wait_for(lambda: dialog.read_receipts.isEnabled(), what="the setting")
        self.assertTrue(dialog.read_receipts.isChecked())
        dialog.read_receipts.click()
        yield wait_for(lambda: dialog.banner.kind == "info", what="stored")
        self.assertFalse(dialog.read_receipts.isChecked())
        dialog.close()
        pane = self.alice.main_window.open_chat("bob")
        pane.compose.setPlainText("private?")
        pane.send()
        yield wait_for(lambda: own_footers(pane) == ["✓✓"], what="delivered")
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: bob_pane.model.rowCount() == 1, what="bob reads it")
        yield self.bob.conversations.flush_markers()
        self.bob.client.receipts.flush()
        yield self.alice.client.send_message("bob", "a later message")  # a round trip
        self.assertEqual(own_footers(pane)[0], "✓✓")


class TypingAndOutboxTests(LiveMarksTestCase):
    @defer.inlineCallbacks
    def test_typing_shows_in_the_header_until_the_message_comes(self) -> Any:
        pane = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: pane.header.subtitle.full_text() == "online",
                       what="bob online")
        bob_pane = self.bob.main_window.open_chat("alice")
        type_into(bob_pane.compose, "typing a long answer")
        yield wait_for(lambda: pane.header.subtitle.full_text() == "bob is typing…",
                       what="typing shown")
        bob_pane.send()
        yield wait_for(lambda: pane.header.subtitle.full_text() == "online",
                       what="typing over")

    @defer.inlineCallbacks
    def test_outbox_left_at_closing_is_delivered_once_after_a_restart(self) -> Any:
        """Written while the server was down, the program closed with the message
        pending: started again, the chat shows it pending, then sent, and bob gets it
        once."""
        yield self.stop_server()
        yield wait_for(lambda: self.alice.client.state.name == "reconnecting",
                       what="reconnecting")
        pane = self.alice.main_window.open_chat("bob")
        pane.compose.setPlainText("written offline")
        pane.send()
        yield self.alice.client.outbox_saved()
        yield self.alice.shutdown()
        yield self.restart_server()
        again = self.make_desktop()
        again.config_dir = self.alice.config_dir
        yield again.start()
        yield wait_for(lambda: again.main_window is not None, what="the main window")
        pane = again.main_window.open_chat("bob")
        yield wait_for(lambda: [e.status for e in pane.model.entries()] == ["acked"],
                       what="sent once")
        yield wait_for(lambda: self.bob.client.state.name == "online", what="bob back")
        history = yield self.bob.client.history("alice")
        self.assertEqual([m["message"] for m in history["alert"]], ["written offline"])
