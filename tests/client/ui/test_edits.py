"""Replies, edits, deletions and search in the desktop client (issue 15), real desktops
on a real server: a reply quotes its message and a click on the quote jumps to it (older
pages loaded); an edit and a deletion show on the other side as they happen, and after
a restart; a group admin may delete anyone's message, a member only their own; search
finds an old message with the words highlighted and opens its chat at it."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from messenger.client.ui.bubbles import DELETED_WORDS, shown_text
from messenger.client.ui.message_search import RESULT_ROLE, highlighted_html
from tests.client.ui.helpers import DesktopTestCase, chat_item, wait_for


class Menu:
    """What a message menu would offer (the pane's extras), without showing it."""

    def __init__(self) -> None:
        self.actions: dict[str, Any] = {}

    def addAction(self, text: str, slot: Any = None) -> Any:  # noqa: N802
        self.actions[text] = slot


def texts(pane: Any) -> list[str]:
    return [shown_text(entry) for entry in pane.model.entries()]


class EditsTestCase(DesktopTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield self.start_server()
        self.alice = yield self.register("alice")
        self.bob = yield self.register("bob")


class ReplyTests(EditsTestCase):
    @defer.inlineCallbacks
    def test_reply_quotes_and_a_click_jumps_to_the_quoted_message(self) -> Any:
        """Bob answers a message older than the loaded page: alice's chat shows the
        quote, and jumping to it loads older pages until it is there. Alice answers
        from the message's menu: bob's copy quotes it."""
        first = yield self.bob.client.send_message("alice", "the original question")
        for n in range(60):
            yield self.bob.client.send_message("alice", f"filler {n}")
        pane = self.alice.main_window.open_chat("bob")
        yield wait_for(lambda: pane.loaded_once and not pane.loading, what="a page")
        self.assertFalse(pane.model.has_msg_id(first["msg_id"]))
        yield self.bob.client.send_message("alice", "answering that",
                                           reply_to=first["msg_id"])
        yield wait_for(lambda: texts(pane)[-1] == "answering that", what="the reply")
        reply = pane.model.entries()[-1]
        self.assertEqual(reply.reply_to, first["msg_id"])
        self.assertIsNone(pane.model.quoted(reply))
        pane.jump_to(reply.reply_to)
        yield wait_for(lambda: pane.model.has_msg_id(first["msg_id"]), timeout=30,
                       what="older pages loaded")
        row = pane.model.row_of_msg_id(first["msg_id"])
        yield wait_for(lambda: pane.view.selection_range(row) is not None,
                       what="the quoted message marked")
        self.assertEqual(pane.model.quoted(reply).text, "the original question")
        pane.quote(reply)
        self.assertTrue(pane.context_bar.isVisibleTo(pane))
        self.assertIn("Replying to bob", pane.context_label.full_text())
        pane.compose.setPlainText("yes, exactly")
        pane.send()
        self.assertFalse(pane.context_bar.isVisibleTo(pane))
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: texts(bob_pane) and texts(bob_pane)[-1] == "yes, exactly",
                       what="bob has the answer")
        self.assertEqual(bob_pane.model.entries()[-1].reply_to, reply.msg_id)


class EditDeleteTests(EditsTestCase):
    @defer.inlineCallbacks
    def test_edit_and_delete_show_on_the_other_side(self) -> Any:
        pane = self.alice.main_window.open_chat("bob")
        pane.compose.setPlainText("see you at 5")
        pane.send()
        yield wait_for(lambda: pane.model.entries()[-1].status == "acked", what="stored")
        entry = pane.model.entries()[-1]
        bob_pane = self.bob.main_window.open_chat("alice")
        yield wait_for(lambda: texts(bob_pane) == ["see you at 5"], what="bob has it")
        menu = Menu()
        pane.edit_menu(entry, menu)
        self.assertEqual(set(menu.actions), {"Edit", "Delete for everyone…"})
        menu.actions["Edit"]()
        self.assertEqual(pane.compose.toPlainText(), "see you at 5")
        pane.compose.setPlainText("see you at 6")
        pane.send()
        yield wait_for(lambda: texts(bob_pane) == ["see you at 6"], what="edited there")
        self.assertTrue(bob_pane.model.entry(0).edited)
        self.assertIn("edited", bob_pane.view.bubbles.footer(bob_pane.model.entry(0)))
        # bob's push may come before alice's own reply: wait for hers too
        yield wait_for(lambda: texts(pane) == ["see you at 6"], what="edited here")
        other = Menu()
        bob_pane.edit_menu(bob_pane.model.entry(0), other)
        self.assertEqual(other.actions, {})           # not bob's to change
        yield pane.delete(entry)
        yield wait_for(lambda: texts(bob_pane) == [DELETED_WORDS], what="deleted there")
        self.assertEqual(bob_pane.model.entry(0).text, "")
        self.assertEqual(chat_item(self.bob, "alice").record.preview, "message deleted")

    @defer.inlineCallbacks
    def test_group_admin_deletes_any_member_only_their_own(self) -> Any:
        carol = yield self.register("carol")
        reply = yield self.alice.client.group_create("Team", members=["bob", "carol"])
        group_id = reply["group"]["group_id"]
        yield self.bob.client.send_group_message(group_id, "spam spam")
        owner_pane = self.alice.main_window.open_group(group_id)
        yield wait_for(lambda: owner_pane.model.rowCount() == 1, what="alice's copy")
        yield wait_for(lambda: f"#{group_id}" in carol.conversations.model.keys(),
                       what="carol has the group")
        carol_pane = carol.main_window.open_group(group_id)
        yield wait_for(lambda: carol_pane.model.rowCount() == 1, what="carol's copy")
        member_menu = Menu()
        carol_pane.edit_menu(carol_pane.model.entry(0), member_menu)
        self.assertEqual(member_menu.actions, {})
        owner_menu = Menu()
        owner_pane.edit_menu(owner_pane.model.entry(0), owner_menu)
        self.assertEqual(set(owner_menu.actions), {"Delete for everyone…"})
        yield owner_pane.delete(owner_pane.model.entry(0))
        yield wait_for(lambda: texts(carol_pane) == [DELETED_WORDS], what="gone for carol")


class SearchTests(EditsTestCase):
    @defer.inlineCallbacks
    def test_search_finds_an_old_message_and_opens_it(self) -> Any:
        yield self.bob.client.send_message("alice", "The release notes are in the wiki")
        for n in range(55):
            yield self.bob.client.send_message("alice", f"chatter {n}")
        dialog = self.alice.main_window.open_message_search()
        dialog.query.setText("releas wiki")
        dialog.search_now()
        yield wait_for(lambda: dialog.results.count() == 1, what="one result")
        result = dialog.results.item(0).data(RESULT_ROLE)
        self.assertEqual(result.message.text, "The release notes are in the wiki")
        html = highlighted_html(result.message.text, result.matches)
        self.assertIn(">release</b>", html)
        self.assertIn(">wiki</b>", html)
        dialog._chosen(dialog.results.item(0))
        pane = self.alice.main_window.panes["@bob"]
        yield wait_for(lambda: pane.model.has_msg_id(result.message.msg_id), timeout=30,
                       what="the old message loaded")
        self.assertEqual(self.alice.main_window.current_key, "@bob")
        dialog.query.setText("")
        dialog.search_now()
        self.assertEqual(dialog.results.count(), 0)
