"""Groups in the desktop client, real desktops against a real server: the New group
dialog, groups in the chat list with unread counts, mention marks and the last message,
the group chat with sender names and highlighted mentions, the members panel (roles,
add, remove, leave), announcement channels, and read markers kept by the server."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication
from twisted.internet import defer

from messenger.client.ui.chat_list import GROUP
from messenger.client.ui.chat_rows import preview_line
from messenger.client.ui.chat_state import group_key
from messenger.client.ui.group_pane import CHANNEL_LINE, COMPOSER, GONE_LINES, READ_ONLY
from tests.admin.test_cli import run_admin
from tests.client.ui.helpers import DesktopTestCase, click, clipped, type_into, wait_for


def group_item(desktop: Any, group_id: int) -> Any:
    return desktop.conversations.model.item(group_key(group_id))


def group_unread(desktop: Any, group_id: int) -> int:
    item = group_item(desktop, group_id)
    return item.unread if item is not None else 0


class GroupTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")
        self.carol = yield self.register("carol")
        for name in ("bob", "carol"):
            yield self.alice.client.add_contact(name)
        yield self.alice.conversations.reload()
        yield wait_for(lambda: self.alice.conversations.model.item("@carol") is not None,
                       what="alice's contacts")

    @defer.inlineCallbacks
    def create_with_dialog(self, name: str, channel: bool = False) -> Any:
        """Alice creates a group through the New group dialog: bob ticked among her
        contacts, carol typed by name. Fires with the group's id."""
        main = self.alice.main_window
        click(main.sidebar.new_group_button)
        dialog = main.new_group_dialog
        self.assertFalse(dialog.create_button.isEnabled())      # no name yet
        type_into(dialog.name, name)
        for row in range(dialog.members.count()):
            if dialog.members.item(row).text() == "bob":
                dialog.members.item(row).setCheckState(Qt.Checked)
        type_into(dialog.add_name, "carol")
        dialog.add_typed()
        self.assertEqual(sorted(dialog.chosen()), ["bob", "carol"])
        dialog.channel.setChecked(channel)
        click(dialog.create_button)
        yield wait_for(lambda: not dialog.isVisible(), what="the group created")
        key = main.current_key
        self.assertTrue(key.startswith("#"))
        return int(key[1:])


class GroupListTests(GroupTestCase):
    @defer.inlineCallbacks
    def test_new_group_unread_mentions_and_sender_names(self) -> Any:
        """A group made in the dialog appears in the members' lists; a message raises
        its count and shows as the preview with its sender; a mention of bob is marked
        on his row, notified, and highlighted in the chat, where each other member's
        messages carry their name. Opening the chat reads it, on the server too."""
        group_id = yield self.create_with_dialog("Class 5b")
        for desktop in (self.bob, self.carol):
            yield wait_for(lambda d=desktop: group_item(d, group_id) is not None,
                           what="the group in the list")
            self.assertEqual(group_item(desktop, group_id).title, "Class 5b")
            self.assertEqual(group_item(desktop, group_id).kind, GROUP)
        pane = self.alice.main_window.panes[group_key(group_id)]
        self.assertEqual(pane.bottom.currentIndex(), COMPOSER)
        pane.compose.setPlainText("Homework for Friday: page 12, @bob please collect")
        pane.send()
        yield wait_for(lambda: pane.model.entries()[-1].status == "acked", what="stored")
        yield self.carol.client.send_group_message(group_id, "ok!")
        yield wait_for(lambda: group_unread(self.bob, group_id) == 2, what="two unread")
        item = group_item(self.bob, group_id)
        self.assertEqual(item.mentions, 1)
        self.assertEqual(preview_line(item, "bob", ""), ("carol: ok!", True))
        self.assertEqual(self.bob.conversations.model.keys()[0], group_key(group_id))
        self.assertEqual(self.bob.main_window.windowTitle(), "(2) Messenger — bob")
        yield wait_for(lambda: self.bob.notifier.shown, what="a notification")
        self.assertEqual(self.bob.notifier.shown[-1][0], "Class 5b")
        bob_pane = self.bob.main_window.open_key(group_key(group_id))
        yield wait_for(lambda: bob_pane.model.rowCount() == 2, what="the history")
        first, second = bob_pane.model.entries()
        self.assertTrue(bob_pane.model.show_senders)
        self.assertEqual((first.sender, first.mentioned, second.mentioned),
                         ("alice", True, False))
        self.assertEqual(first.mention_spans, [(30, 34)])
        self.assertEqual(first.text[30:34], "@bob")
        self.assertEqual(group_unread(self.bob, group_id), 0)
        counts = yield wait_for_counts(self.bob, lambda c: group_id not in c.groups)
        self.assertNotIn(group_id, counts.groups)

    @defer.inlineCallbacks
    def test_mention_notifies_in_a_muted_group(self) -> Any:
        """A muted group notifies nothing, except a message that mentions the user;
        the title's total counts only those mentions."""
        group_id = yield self.create_with_dialog("Team")
        yield wait_for(lambda: group_item(self.bob, group_id) is not None, what="listed")
        self.bob.main_window.toggle_mute(group_key(group_id))
        batcher = self.bob.conversations.batcher
        yield self.alice.client.send_group_message(group_id, "lunch at noon")
        yield wait_for(lambda: group_unread(self.bob, group_id) == 1, what="one unread")
        self.assertEqual(batcher.pending, {})
        self.assertEqual(self.bob.main_window.windowTitle(), "Messenger — bob")
        yield self.alice.client.send_group_message(group_id, "@bob can you book it?")
        yield wait_for(lambda: batcher.pending, what="the mention held for notifying")
        batcher.flush()
        self.assertEqual(self.bob.notifier.shown[-1],
                         ("Team", "alice mentioned you: @bob can you book it?"))
        self.assertEqual(self.bob.main_window.windowTitle(), "(1) Messenger — bob")

    @defer.inlineCallbacks
    def test_read_markers_follow_to_another_computer(self) -> Any:
        """Unread counts are the server's: bob reads the group at one computer; at a
        second computer (a fresh config dir) it is read, and what came while both were
        closed is unread there, with one notification."""
        group_id = yield self.create_with_dialog("Study")
        yield wait_for(lambda: group_item(self.bob, group_id) is not None, what="listed")
        yield self.alice.client.send_group_message(group_id, "one")
        yield wait_for(lambda: group_unread(self.bob, group_id) == 1, what="unread")
        self.bob.main_window.open_key(group_key(group_id))
        yield wait_for_counts(self.bob, lambda c: group_id not in c.groups)
        yield self.bob.shutdown()
        for text in ("two", "three"):
            yield self.alice.client.send_group_message(group_id, text)
        elsewhere = self.make_desktop()
        yield self.started(elsewhere)
        yield self.login(elsewhere, "bob")
        yield wait_for(lambda: group_unread(elsewhere, group_id) == 2, what="two unread")
        yield wait_for(lambda: elsewhere.notifier.shown, what="the notification")
        self.assertEqual(elsewhere.notifier.shown,
                         [("Study", "2 new messages. The last: alice: three")])
        self.assertEqual(group_item(elsewhere, group_id).record.preview, "three")


class MembersAndChannelTests(GroupTestCase):
    @defer.inlineCallbacks
    def test_announcement_channel_composer(self) -> Any:
        """In an announcement channel a plain member has no composer but a line saying
        why (nothing clipped, 380 px wide too); the owner has one; making carol an admin
        gives her one at once."""
        group_id = yield self.create_with_dialog("Class 5b news", channel=True)
        yield wait_for(lambda: group_item(self.carol, group_id) is not None, what="listed")
        pane = self.carol.main_window.open_key(group_key(group_id))
        self.assertEqual(pane.bottom.currentIndex(), READ_ONLY)
        self.assertEqual(pane.read_only_label.text(), CHANNEL_LINE)
        self.assertFalse(pane.compose.isVisible())
        self.assertIn("announcement channel", pane.header.subtitle.full_text())
        carol_main = self.carol.main_window
        carol_main.show()
        carol_main.resize(380, 640)
        yield wait_for(lambda: carol_main.narrow and pane.isVisible(), what="narrow")
        for _ in range(3):                  # the layouts run (the event queue empties)
            QApplication.processEvents()
            yield wait_for(lambda: True)
        self.assertEqual(clipped(carol_main), [])
        carol_main.resize(1000, 700)
        owner_pane = self.alice.main_window.panes[group_key(group_id)]
        self.assertEqual(owner_pane.bottom.currentIndex(), COMPOSER)
        yield self.alice.client.group_set_role(group_id, "carol", "admin")
        yield wait_for(lambda: pane.bottom.currentIndex() == COMPOSER, what="a composer")
        self.assertTrue(pane.compose.isVisible())

    @defer.inlineCallbacks
    def test_members_panel_roles_remove_and_leave(self) -> Any:
        """The owner's members panel lists everyone with roles; Make admin and Remove
        act at once; the removed member's chat says so and gets nothing more; a member
        who leaves from the menu disappears from the owner's panel."""
        group_id = yield self.create_with_dialog("Project")
        yield wait_for(lambda: group_item(self.carol, group_id) is not None
                       and group_item(self.bob, group_id) is not None, what="listed")
        carol_pane = self.carol.main_window.open_key(group_key(group_id))
        panel = self.alice.main_window.open_members(group_id)
        yield wait_for(lambda: panel.members.count() == 3, what="three members")
        self.assertEqual(panel.roles, {"alice": "owner", "bob": "member",
                                       "carol": "member"})
        self.assertTrue(panel.delete_button.isVisible())
        self.assertFalse(panel.leave_button.isVisible())
        panel.select("bob")
        click(panel.admin_button)
        yield wait_for(lambda: panel.roles.get("bob") == "admin", what="bob an admin")
        yield wait_for(lambda: group_item(self.bob, group_id).group.role == "admin",
                       what="bob told")
        panel.select("carol")
        click(panel.remove_button)
        yield wait_for(lambda: panel.members.count() == 2, what="carol removed")
        yield wait_for(lambda: carol_pane.bottom.currentIndex() == READ_ONLY,
                       what="carol's composer gone")
        self.assertEqual(carol_pane.read_only_label.text(), GONE_LINES["removed"])
        yield self.alice.client.send_group_message(group_id, "after carol left")
        yield wait_for(lambda: group_unread(self.bob, group_id) == 1, what="bob's")
        self.assertEqual(group_unread(self.carol, group_id), 0)
        self.assertNotIn("after carol left",
                         [entry.text for entry in carol_pane.model.entries()])
        bob_main = self.bob.main_window
        menu = bob_main.fill_group_menu(group_key(group_id), _Menu())
        self.assertIn("Leave group", menu.texts)
        yield bob_main.leave_group(group_id)
        yield wait_for(lambda: panel.members.count() == 1, what="bob gone from the panel")
        self.assertEqual(group_item(self.bob, group_id).group.gone, "left")


class _Menu:
    """Collects what a menu would show (a QMenu's actions, without showing it)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def addAction(self, text: str, slot: Any = None) -> Any:  # noqa: N802
        self.texts.append(text)

    def addSeparator(self) -> None:  # noqa: N802
        pass


@defer.inlineCallbacks
def wait_for_counts(desktop: Any, condition: Any) -> Any:
    """Ask the server for the unread counts until ``condition(counts)`` holds."""
    counts = None
    for _ in range(200):
        counts = yield desktop.client.unread_counts()
        if condition(counts):
            return counts
        yield wait_for(lambda: True)
        from twisted.internet import reactor, task
        yield task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"the server's counts stayed {counts}")


class OwnerAndAdminTests(GroupTestCase):
    @defer.inlineCallbacks
    def test_refusal_shown_owner_handed_over_and_group_deleted(self) -> Any:
        """Adding a name that does not exist is refused in the panel in the server's
        words; Make owner (after a question) hands ownership to bob, who can then delete
        the group from his panel: carol's chat says it was deleted."""
        group_id = yield self.create_with_dialog("Book club")
        yield wait_for(lambda: group_item(self.carol, group_id) is not None, what="listed")
        panel = self.alice.main_window.open_members(group_id)
        yield wait_for(lambda: panel.members.count() == 3, what="the members")
        type_into(panel.add_name, "nobody")
        click(panel.add_button)
        yield wait_for(lambda: panel.banner.kind == "error", what="the refusal")
        self.assertIn("nobody", panel.banner.text())
        panel.select("bob")
        box = panel.confirm_owner()
        click(next(button for button in box.buttons()
                   if box.buttonRole(button) == box.DestructiveRole))
        yield wait_for(lambda: panel.roles.get("bob") == "owner", what="bob the owner")
        self.assertEqual(panel.roles["alice"], "admin")
        self.assertFalse(panel.delete_button.isVisible())
        self.assertTrue(panel.leave_button.isVisible())
        yield wait_for(lambda: group_item(self.bob, group_id).group.role == "owner",
                       what="bob told")
        carol_pane = self.carol.main_window.open_key(group_key(group_id))
        bob_panel = self.bob.main_window.open_members(group_id)
        yield wait_for(lambda: bob_panel.members.count() == 3, what="bob's panel")
        self.assertTrue(bob_panel.delete_button.isVisible())
        yield bob_panel.delete()
        yield wait_for(lambda: group_item(self.carol, group_id).group.gone == "deleted",
                       what="carol told")
        self.assertEqual(carol_pane.read_only_label.text(), GONE_LINES["deleted"])
        self.assertEqual(group_item(self.bob, group_id).group.gone, "deleted")

    @defer.inlineCallbacks
    def test_server_admin_deletes_a_group_from_the_admin_panel(self) -> Any:
        """Alice (the server's administrator) lists every group in the admin panel's
        Groups tab, a group she is not in among them, and deletes it: its members are
        told, and the audit log has it."""
        reply = yield self.bob.client.group_create("Secret plans", members=["carol"])
        group_id = reply["group"]["group_id"]
        yield wait_for(lambda: group_item(self.carol, group_id) is not None, what="listed")
        panel = self.alice.main_window.open_admin()
        panel.tabs.setCurrentIndex(3)
        yield wait_for(lambda: panel.groups_table.rowCount() == 1, what="the groups")
        self.assertEqual([panel.groups_table.item(0, c).text() for c in (1, 2, 3)],
                         ["Secret plans", "bob", "2"])
        panel.select_group(group_id)
        self.assertTrue(panel.delete_group_button.isEnabled())
        yield panel.delete_group(panel.selected_group())
        yield wait_for(lambda: panel.groups_table.rowCount() == 0, what="gone")
        yield wait_for(lambda: group_item(self.carol, group_id).group.gone == "deleted",
                       what="carol told")
        panel.tabs.setCurrentIndex(2)
        yield wait_for(lambda: any(panel.audit_table.item(row, 2).text() == "delete group"
                                   for row in range(panel.audit_table.rowCount())),
                       what="the audit entry")

    @defer.inlineCallbacks
    def test_operator_deletes_a_group_with_messenger_admin(self) -> Any:
        """The server's operator deletes a group with ``messenger-admin groups delete``
        beside the running server: the members' desktops mark it deleted at once and
        their notices say the server's administrator did it."""
        reply = yield self.bob.client.group_create("Secret plans", members=["carol"])
        group_id = reply["group"]["group_id"]
        yield wait_for(lambda: group_item(self.carol, group_id) is not None, what="listed")
        status, out, err = yield run_admin(self.server.config.data_dir.resolve(),
                                           "groups", "delete", str(group_id), "--yes")
        self.assertEqual(status, 0, out + err)
        for desktop in (self.bob, self.carol):
            yield wait_for(lambda desktop=desktop:
                           group_item(desktop, group_id).group.gone == "deleted",
                           what="told")
            self.assertIn("The server's administrator deleted the group “Secret plans”.",
                          desktop.main_window.notices.texts())
