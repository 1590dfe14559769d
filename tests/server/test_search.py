"""Message search over a real server on loopback: only the caller's own conversations
(direct and groups, within its membership windows), ranked, paged with ``more``, with
match offsets, narrowed to one conversation on request, in step with edits and
deletions; bad queries are refused (messenger.server.handlers.search)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.server.people import server_with
from tests.server.test_groups import NOT_MEMBER, class_of_five, error
from tests.support.services import OnPostgres


def texts(reply):
    return [item["message"] for item in reply["alert"]]


class SearchTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.server, (self.alice, self.bob, self.carol) = yield server_with(
            self, "alice", "bob", "carol")
        for sender, to, body in (("alice", "bob", "Planning the Meeting on Friday"),
                                 ("bob", "alice", "meeting meeting meeting, all day"),
                                 ("carol", "bob", "secret meeting with bob"),
                                 ("alice", "carol", "no words of interest"),
                                 ("bob", "alice", "Café au lait?")):
            client = getattr(self, sender)
            reply = yield client.request("msg", to=to, message=body)
            self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_own_conversations_ranked_with_matches(self):
        """alice finds the messages she sent or received that hold the word (as a
        prefix), the densest match first, each with where the words are; carol's
        message to bob is not hers to find."""
        reply = yield self.alice.request("search_messages", query="MEET")
        self.assertEqual((reply["response"], reply["more"]), (202, False))
        self.assertEqual(texts(reply), ["meeting meeting meeting, all day",
                                        "Planning the Meeting on Friday"])
        self.assertEqual(reply["alert"][0]["matches"], [[0, 7], [8, 7], [16, 7]])
        self.assertEqual(reply["alert"][1]["matches"], [[13, 7]])
        self.assertEqual((reply["alert"][1]["from"], reply["alert"][1]["to"]),
                         ("alice", "bob"))
        reply = yield self.bob.request("search_messages", query="meeting")
        self.assertEqual(len(reply["alert"]), 3)
        reply = yield self.alice.request("search_messages", query="secret")
        self.assertEqual(reply["alert"], [])

    @defer.inlineCallbacks
    def test_every_word_must_match_and_one_conversation(self):
        """All words must match; ``with`` narrows to one conversation."""
        reply = yield self.bob.request("search_messages", query="meeting friday")
        self.assertEqual(texts(reply), ["Planning the Meeting on Friday"])
        reply = yield self.bob.request("search_messages", query="meeting", **{"with": "carol"})
        self.assertEqual(texts(reply), ["secret meeting with bob"])
        reply = yield self.bob.request("search_messages", query="x", **{"with": "nobody"})
        self.assertEqual(error(reply), (404, "no user named 'nobody'"))

    @defer.inlineCallbacks
    def test_pages(self):
        """``limit`` and ``offset`` page through the ranked results with ``more``."""
        first = yield self.bob.request("search_messages", query="meeting", limit=2)
        self.assertEqual((len(first["alert"]), first["more"]), (2, True))
        rest = yield self.bob.request("search_messages", query="meeting", limit=2, offset=2)
        self.assertEqual((len(rest["alert"]), rest["more"]), (1, False))
        ids = [m["msg_id"] for m in first["alert"] + rest["alert"]]
        self.assertEqual(len(set(ids)), 3)

    @defer.inlineCallbacks
    def test_edits_and_deletions_keep_the_index_in_step(self):
        """An edited message is found by its new words only; a deleted one not at all."""
        found = yield self.alice.request("search_messages", query="friday")
        (item,) = found["alert"]
        yield self.alice.request("edit_msg", msg_id=item["msg_id"], message="on Monday now")
        reply = yield self.bob.request("search_messages", query="friday")
        self.assertEqual(reply["alert"], [])
        reply = yield self.bob.request("search_messages", query="monday")
        self.assertEqual([(m["message"], "edited" in m) for m in reply["alert"]],
                         [("on Monday now", True)])
        yield self.alice.request("delete_msg", msg_id=item["msg_id"])
        reply = yield self.bob.request("search_messages", query="monday")
        self.assertEqual(reply["alert"], [])

    @defer.inlineCallbacks
    def test_bad_queries_are_refused(self):
        """An empty, huge or wordless query, or too many words, is a 400 naming the
        query."""
        cases = [("", "'query' must be 1 to 256 characters long"),
                 ("x" * 257, "'query' must be 1 to 256 characters long"),
                 ("?! -- %", "'query' has no words to search for (letters or digits)"),
                 (" ".join(f"w{n}" for n in range(17)), "'query' may hold at most 16 words"),
                 ("y" * 65, "'query' may hold no word longer than 64 characters")]
        for query, text in cases:
            reply = yield self.alice.request("search_messages", query=query)
            self.assertEqual(error(reply), (400, text), query)


class GroupSearchTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_group_windows(self):
        """Members find group messages; a member added later finds only what was said
        after it joined; ``group`` narrows to one group; a non-member gets 403."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield teacher.request("msg", group=gid, message="homework page 12")
        found = yield ann.request("search_messages", query="homework")
        self.assertEqual([(m["message"], m["group"]) for m in found["alert"]],
                         [("homework page 12", gid)])
        reply = yield root.request("search_messages", query="homework")
        self.assertEqual(reply["alert"], [])
        reply = yield root.request("search_messages", query="homework", group=gid)
        self.assertEqual(error(reply), NOT_MEMBER)
        yield teacher.request("group_add", group=gid, user_id="root")
        yield teacher.request("msg", group=gid, message="more homework: page 13")
        reply = yield root.request("search_messages", query="homework", group=gid)
        self.assertEqual(texts(reply), ["more homework: page 13"])
        reply = yield ann.request("search_messages", query="page", group=gid)
        self.assertEqual(len(reply["alert"]), 2)
        yield teacher.request("group_remove", group=gid, user_id="ann")
        reply = yield ann.request("search_messages", query="homework")
        self.assertEqual(reply["alert"], [])


class SearchTestsOnPostgres(OnPostgres, SearchTests):
    """The same on a PostgreSQL store (full text with tsvector and GIN)."""


class GroupSearchTestsOnPostgres(OnPostgres, GroupSearchTests):
    """The same on a PostgreSQL store."""
