"""Black-box tests of replies, edits, deletions and message search on a real ``twistd
messenger`` with the independent client (tests/independent/client.py). Every expectation
is taken from docs/PROTOCOL.md, sections "Replies, edits and deletions" and "Searching
messages"."""

from tests.independent.test_independent_client import PASSWORD, ServerTestCase, unique


class ReplyEditDeleteTests(ServerTestCase):

    def pair(self):
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        return a, alice, b, bob

    def test_reply_edit_delete_live_and_after_login(self):
        """A reply carries reply_to; an edit and a deletion are answered with the change
        and pushed as msg_changed; history shows edited/deleted; a client that was away
        catches up with sync_changes from its last_change."""
        a, alice, b, bob = self.pair()
        first = self.assertReply(a.request("msg", to=bob, message="lunch at noon?"), 200)
        b.wait_push("msg")
        answer = self.assertReply(b.request("msg", to=alice, message="yes",
                                            reply_to=first["msg_id"]), 200)
        push = a.wait_push("msg")
        self.assertEqual((push["msg_id"], push["reply_to"]), (answer["msg_id"],
                                                             first["msg_id"]))
        start = self.assertReply(b.request("sync_changes"), 202, alert=[], more=False)
        self.assertIsInstance(start["last_change"], int)

        edited = self.assertReply(a.request("edit_msg", msg_id=first["msg_id"],
                                            message="lunch at one?"), 200,
                                  kind="edited", message="lunch at one?", by=alice)
        push = b.wait_push("msg_changed")
        self.assertEqual({k: push[k] for k in ("change_id", "msg_id", "from", "to", "kind",
                                               "message", "by", "edited")},
                         {k: edited[k] for k in ("change_id", "msg_id", "from", "to",
                                                 "kind", "message", "by", "edited")})
        self.assertGreater(edited["change_id"], start["last_change"])

        b.request("quit")
        b.wait_closed(5)
        deleted = self.assertReply(a.request("delete_msg", msg_id=answer["msg_id"]), 403)
        self.assertEqual(deleted["error"], "you may only delete your own messages (a group's"
                                           " owner and admins may delete any message of the"
                                           " group)")
        gone = self.assertReply(a.request("delete_msg", msg_id=first["msg_id"]), 200,
                                kind="deleted", message="")
        b = self.connect()
        self.assertReply(b.login(bob, PASSWORD), 200)
        changes = self.assertReply(b.request("sync_changes", since=edited["change_id"]),
                                   202, more=False)
        self.assertEqual([(c["msg_id"], c["kind"], c["message"], c["deleted"])
                          for c in changes["alert"]],
                         [(first["msg_id"], "deleted", "", gone["deleted"])])
        history = self.assertReply(b.request("history", **{"with": alice}), 202)
        self.assertEqual([(m["message"], "deleted" in m, m.get("reply_to"))
                          for m in history["alert"]],
                         [("", True, None), ("yes", False, first["msg_id"])])

    def test_refusals(self):
        """Someone else's message cannot be edited (403) or seen by a third user (404);
        a reply into another conversation is 404; a deleted message cannot be edited
        (409)."""
        a, alice, b, bob = self.pair()
        c, carol = self.user("carol")
        sent = self.assertReply(a.request("msg", to=bob, message="hello"), 200)
        self.assertReply(b.request("edit_msg", msg_id=sent["msg_id"], message="x"), 403,
                         error="you may only edit your own messages")
        self.assertReply(c.request("delete_msg", msg_id=sent["msg_id"]), 404,
                         error=f"no message {sent['msg_id']} that you can see")
        self.assertReply(c.request("msg", to=alice, message="x", reply_to=sent["msg_id"]),
                         404, error=f"'reply_to': no message {sent['msg_id']} in this"
                                    " conversation (a reply quotes an earlier message of"
                                    " the same conversation)")
        self.assertReply(a.request("delete_msg", msg_id=sent["msg_id"]), 200)
        self.assertReply(a.request("edit_msg", msg_id=sent["msg_id"], message="again"), 409,
                         error=f"message {sent['msg_id']} was deleted: there is nothing to"
                               " edit")


class SearchTests(ServerTestCase):

    def test_search_own_conversations(self):
        """search_messages finds the caller's messages holding every word (prefixes from
        two letters), best first, with [start, length] matches; others' are not found."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        c, carol = self.user("carol")
        word = unique("zebra")
        self.assertReply(a.request("msg", to=bob, message=f"the {word} crossing"), 200)
        self.assertReply(b.request("msg", to=alice, message=f"{word} {word}!"), 200)
        self.assertReply(c.request("msg", to=bob, message=f"{word} for bob"), 200)
        reply = self.assertReply(a.request("search_messages", query=word[:-1].upper()), 202,
                                 more=False)
        self.assertEqual([(m["message"], m["matches"]) for m in reply["alert"]],
                         [(f"{word} {word}!", [[0, len(word)], [len(word) + 1, len(word)]]),
                          (f"the {word} crossing", [[4, len(word)]])])
        reply = self.assertReply(b.request("search_messages", query=word, limit=1), 202,
                                 more=True)
        self.assertEqual(len(reply["alert"]), 1)
        reply = self.assertReply(b.request("search_messages", query=f"{word} bob",
                                           **{"with": carol}), 202)
        self.assertEqual([m["message"] for m in reply["alert"]], [f"{word} for bob"])
        self.assertReply(a.request("search_messages", query="?!"), 400,
                         error="'query' has no words to search for (letters or digits)")
        self.assertReply(a.request("search_messages", query=""), 400,
                         error="'query' must be 1 to 256 characters long")
