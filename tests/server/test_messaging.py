"""Contacts, direct messages, sync, resends and history, over a real server on loopback
with several real clients (messenger.server.handlers.contacts and .messages)."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server import replies
from messenger.server.handlers import messages
from messenger.wire import jim
from tests.server.people import barrier, count, drop, login, quit_, rows, server_with, wait_until
from tests.support.services import OnPostgres


def request_id() -> str:
    return os.urandom(16).hex()


class ContactsTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_add_list_and_delete(self):
        """A contact added by any case of its name is listed with its presence, then removed."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "Bob", "carol")
        reply = yield alice.request("add_contact", user_id="BOB")
        self.assertEqual(reply["response"], 201)
        self.assertEqual(reply["contact"], {"account_name": "Bob", "status": "online"})
        yield quit_(carol)
        reply = yield alice.request("add_contact", user_id="carol")
        self.assertEqual(reply["contact"], {"account_name": "carol", "status": "offline"})
        reply = yield alice.request("get_contacts")
        self.assertEqual(reply["response"], 202)
        self.assertEqual(reply["alert"], [{"account_name": "Bob", "status": "online"},
                                          {"account_name": "carol", "status": "offline"}])
        reply = yield alice.request("del_contact", user_id="bob")
        self.assertEqual(reply["response"], 200)
        reply = yield alice.request("get_contacts")
        self.assertEqual([c["account_name"] for c in reply["alert"]], ["carol"])
        reply = yield bob.request("get_contacts")
        self.assertEqual(reply["alert"], [])

    @defer.inlineCallbacks
    def test_add_errors(self):
        """Adding an unknown name is 404, adding twice 409, adding yourself 400."""
        server, (alice, _) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("add_contact", user_id="nobody")
        self.assertEqual((reply["response"], reply["error"]), (404, "no user named 'nobody'"))
        reply = yield alice.request("add_contact", user_id="bob")
        self.assertEqual(reply["response"], 201)
        reply = yield alice.request("add_contact", user_id="Bob")
        self.assertEqual(reply["response"], 409)
        self.assertIn("already in your contacts", reply["error"])
        reply = yield alice.request("add_contact", user_id="ALICE")
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "you cannot add yourself as a contact"))
        stored = yield count(server, "contacts")
        self.assertEqual(stored, 1)

    @defer.inlineCallbacks
    def test_contacts_paged_and_capped(self):
        """get_contacts pages by name with `after` and `limit`; past max_contacts an add
        is 403 and nothing is stored; removing one makes room again."""
        from messenger.server.config import LimitsConfig
        from tests.server.people import no_limits
        limits: LimitsConfig = no_limits()
        limits.max_contacts = 3
        server, (alice, *_) = yield server_with(self, "alice", "dora", "bob", "Carl", "eve",
                                                limits=limits)
        for name in ("dora", "bob", "Carl"):
            reply = yield alice.request("add_contact", user_id=name)
            self.assertEqual(reply["response"], 201)
        reply = yield alice.request("add_contact", user_id="eve")
        self.assertEqual((reply["response"], reply["error"]),
                         (403, "you have 3 contacts, the most allowed; remove one first"))
        stored = yield count(server, "contacts")
        self.assertEqual(stored, 3)
        first = yield alice.request("get_contacts", limit=2)
        self.assertEqual(([c["account_name"] for c in first["alert"]], first["more"]),
                         (["bob", "Carl"], True))
        rest = yield alice.request("get_contacts", limit=2, after="carl")
        self.assertEqual(([c["account_name"] for c in rest["alert"]], rest["more"]),
                         (["dora"], False))
        yield alice.request("del_contact", user_id="bob")
        reply = yield alice.request("add_contact", user_id="eve")
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_delete_errors(self):
        """Deleting an unknown name or a name that is not a contact is 404."""
        server, (alice, _) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("del_contact", user_id="nobody")
        self.assertEqual(reply["response"], 404)
        reply = yield alice.request("del_contact", user_id="bob")
        self.assertEqual((reply["response"], reply["error"]),
                         (404, "'bob' is not in your contacts"))

    @defer.inlineCallbacks
    def test_search_case_insensitive_substring_paged(self):
        """search_users finds names containing the query in any case, in pages, without
        the caller, and marks who is already a contact."""
        names = ["alice", "Malik", "ALINA", "bob", "kalinka", "Salim"]
        server, clients = yield server_with(self, *names)
        alice = clients[0]
        yield alice.request("add_contact", user_id="alina")
        reply = yield alice.request("search_users", query="aLi")
        self.assertEqual(reply["response"], 202)
        self.assertEqual(reply["alert"], [
            {"account_name": "ALINA", "contact": True},
            {"account_name": "kalinka", "contact": False},
            {"account_name": "Malik", "contact": False},
            {"account_name": "Salim", "contact": False}])
        self.assertFalse(reply["more"])
        first = yield alice.request("search_users", query="ali", limit=3)
        self.assertEqual(len(first["alert"]), 3)
        self.assertTrue(first["more"])
        second = yield alice.request("search_users", query="ali", limit=3, offset=3)
        self.assertEqual([r["account_name"] for r in first["alert"] + second["alert"]],
                         ["ALINA", "kalinka", "Malik", "Salim"])
        self.assertFalse(second["more"])

    @defer.inlineCallbacks
    def test_search_limit_at_most_50(self):
        """A search page holds at most 50 names; asking for more is refused."""
        server, (alice,) = yield server_with(self, "alice")
        reply = yield alice.request("search_users", query="a", limit=51)
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "'limit' must be between 1 and 50"))

    @defer.inlineCallbacks
    def test_search_takes_wildcards_literally(self):
        """'%' and '_' in a search match themselves, not any text."""
        server, (alice, _, _) = yield server_with(self, "alice", "a_b", "axb")
        reply = yield alice.request("search_users", query="_")
        self.assertEqual(reply["alert"], [{"account_name": "a_b", "contact": False}])
        reply = yield alice.request("search_users", query="%")
        self.assertEqual(reply["alert"], [])


class DirectMessageTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_live_message(self):
        """A message to an online user is acknowledged with the server's id and time and
        pushed to the recipient with the same id, sender and body."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("add_contact", user_id="bob")
        reply = yield alice.request("msg", to="BOB", message="hello, Bob ✓")
        self.assertEqual(reply["response"], 200)
        self.assertIsInstance(reply["msg_id"], int)
        push = yield bob.wait_push("msg")
        self.assertEqual(push, {"action": "msg", "msg_id": reply["msg_id"],
                                "time": reply["time"], "from": "alice", "to": "bob",
                                "message": "hello, Bob ✓"})
        stored = yield rows(server, "SELECT id, body FROM messages")
        self.assertEqual(stored, [(reply["msg_id"], "hello, Bob ✓")])

    @defer.inlineCallbacks
    def test_ack_only_after_commit(self):
        """When the 200 arrives, the message is already readable from another connection
        of the database (it was committed before the acknowledgement)."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        replies = yield defer.gatherResults([
            alice.request("msg", to="bob", message=f"m{i}") for i in range(20)])
        for reply in replies:
            stored = yield count(server, "messages", "WHERE id = ?", reply["msg_id"])
            self.assertEqual(stored, 1)

    @defer.inlineCallbacks
    def test_unknown_recipient(self):
        """A message to a name that does not exist is 404 and nothing is stored."""
        server, (alice,) = yield server_with(self, "alice")
        reply = yield alice.request("msg", to="nobody", message="hi")
        self.assertEqual((reply["response"], reply["error"]), (404, "no user named 'nobody'"))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)

    @defer.inlineCallbacks
    def test_from_must_be_the_sender(self):
        """A classic JIM 'from' naming someone else is refused; one's own name is fine."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("msg", to="bob", message="hi", **{"from": "bob"})
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "'from' must be your own account name"))
        reply = yield alice.request("msg", to="bob", message="hi", **{"from": "Alice"})
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_body_size_limit(self):
        """Bodies up to the configured size (16 KiB of UTF-8 by default) pass; one byte
        more is 400 and not stored, whether the bytes come from ASCII or multi-byte text."""
        server, (alice, _) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("msg", to="bob", message="x" * 16384)
        self.assertEqual(reply["response"], 200)
        for body in ("x" * 16385, "é" * 8193):
            reply = yield alice.request("msg", to="bob", message=body)
            self.assertEqual((reply["response"], reply["error"]),
                             (400, "'message' is larger than 16384 bytes"))
        stored = yield count(server, "messages")
        self.assertEqual(stored, 1)

    @defer.inlineCallbacks
    def test_configured_body_size(self):
        """The body limit follows the server's max_body setting."""
        server, (alice, _) = yield server_with(self, "alice", "bob", max_body=10)
        reply = yield alice.request("msg", to="bob", message="0123456789")
        self.assertEqual(reply["response"], 200)
        reply = yield alice.request("msg", to="bob", message="0123456789a")
        self.assertEqual(reply["response"], 400)

    @defer.inlineCallbacks
    def test_many_concurrent_senders_are_batched(self):
        """Messages from several connections at once are all stored and acknowledged,
        in fewer transactions than messages (group commit)."""
        names = [f"user{i}" for i in range(6)]
        server, clients = yield server_with(self, *names)
        batches_before = server.ctx.messages.batches
        sends = [client.request("msg", to=names[(i + 1) % 6], message=f"{i}/{n}")
                 for n in range(50) for i, client in enumerate(clients)]
        replies = yield defer.gatherResults(sends)
        self.assertEqual({r["response"] for r in replies}, {200})
        self.assertEqual(len({r["msg_id"] for r in replies}), 300)
        batches = server.ctx.messages.batches - batches_before
        self.assertLess(batches, 300)
        stored = yield count(server, "messages")
        self.assertEqual(stored, 300)


class SyncTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_offline_user_gets_everything_once_in_order(self):
        """A user who was offline gets, through sync, every message sent meanwhile by
        several senders, exactly once and in the order the server accepted them."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        yield quit_(carol)
        sent = []
        for i in range(6):
            sender, name = (alice, "alice") if i % 2 == 0 else (bob, "bob")
            reply = yield sender.request("msg", to="carol", message=f"note {i}")
            sent.append((reply["msg_id"], name, f"note {i}"))
        yield alice.request("msg", to="bob", message="not for carol")
        carol = yield login(self, server, "carol")
        reply = yield carol.request("sync", since=0)
        self.assertEqual(reply["response"], 202)
        self.assertEqual([(m["msg_id"], m["from"], m["message"]) for m in reply["alert"]],
                         sent)
        self.assertEqual({m["to"] for m in reply["alert"]}, {"carol"})
        self.assertFalse(reply["more"])
        again = yield carol.request("sync", since=sent[-1][0])
        self.assertEqual(again["alert"], [])
        self.assertEqual([p for p in carol.pushes if p["action"] == "msg"], [])

    @defer.inlineCallbacks
    def test_sync_pages(self):
        """sync pages with limit and 'more'; following the last id gives each message once."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        for i in range(7):
            yield alice.request("msg", to="bob", message=str(i))
        seen, since = [], 0
        while True:
            reply = yield bob.request("sync", since=since, limit=3)
            seen += [m["message"] for m in reply["alert"]]
            if not reply["more"]:
                break
            since = reply["alert"][-1]["msg_id"]
        self.assertEqual(seen, [str(i) for i in range(7)])

    @defer.inlineCallbacks
    def test_large_pages_are_cut_by_size(self):
        """A sync or history page of big bodies stays within the documented 1 MiB by its
        encoded size (a control character takes six bytes in JSON) and says 'more';
        following the pages still gives every message once, in order."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        body = "\x01" * 16000
        sent = []
        for i in range(40):
            reply = yield alice.request("msg", to="bob", message=f"{i:02d}" + body)
            sent.append(reply["msg_id"])
        seen, since = [], 0
        while True:
            reply = yield bob.request("sync", since=since, limit=1000)
            self.assertLessEqual(len(jim.encode(reply)), jim.MAX_SERVER_PAYLOAD)
            seen += [m["msg_id"] for m in reply["alert"]]
            if not reply["more"]:
                break
            since = reply["alert"][-1]["msg_id"]
        self.assertEqual(seen, sent)
        self.assertGreater(len(sent), len(seen) // 2)
        page = yield bob.request("history", limit=200, **{"with": "alice"})
        self.assertTrue(page["more"])
        self.assertEqual([m["msg_id"] for m in page["alert"]],
                         sent[len(sent) - len(page["alert"]):])

    @defer.inlineCallbacks
    def test_pipelined_messages_to_a_new_recipient_keep_order(self):
        """Messages sent back to back to a recipient not yet looked up are stored (and
        numbered) in the order sent."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        server.ctx.directory.forget("bob")
        replies = yield defer.gatherResults(
            [alice.request("msg", to="bob", message=str(i)) for i in range(30)])
        ids = [reply["msg_id"] for reply in replies]
        self.assertEqual(ids, sorted(ids))

    @defer.inlineCallbacks
    def test_lost_connection_catches_up(self):
        """A client that lost its connection syncs from the last id it saw and gets the
        messages it missed, once each, and none it already had."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        first = yield alice.request("msg", to="bob", message="before")
        push = yield bob.wait_push("msg")
        last_seen = push["msg_id"]
        self.assertEqual(last_seen, first["msg_id"])
        yield drop(bob)
        yield wait_until(lambda: not server.ctx.router.is_online(
            server.ctx.directory.cached("bob").id))
        missed = []
        for text in ("while", "away"):
            reply = yield alice.request("msg", to="bob", message=text)
            missed.append(reply["msg_id"])
        bob = yield login(self, server, "bob")
        reply = yield bob.request("sync", since=last_seen)
        self.assertEqual([(m["msg_id"], m["message"]) for m in reply["alert"]],
                         list(zip(missed, ["while", "away"], strict=True)))


class ResendTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_resend_after_cut_is_stored_once(self):
        """The connection is cut after the send and before the client read the ack; the
        resend of the same request id on a new connection gets the original message id,
        the message is stored once and the recipient gets one push."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        rid = request_id()
        alice.transport.pauseProducing()  # the ack will never be read
        alice.request("msg", id=rid, to="bob", message="exactly once").addErrback(
            lambda failure: None)
        yield wait_until(lambda: count(server, "messages"))
        yield drop(alice)
        original = yield rows(server, "SELECT id, created FROM messages")
        alice = yield login(self, server, "alice")
        reply = yield alice.request("msg", id=rid, to="bob", message="exactly once")
        self.assertEqual(reply["response"], 200)
        self.assertEqual((reply["msg_id"], reply["time"]), original[0])
        stored = yield count(server, "messages")
        self.assertEqual(stored, 1)
        yield barrier(bob)
        pushes = [p for p in bob.pushes if p["action"] == "msg"]
        self.assertEqual([p["msg_id"] for p in pushes], [original[0][0]])

    @defer.inlineCallbacks
    def test_resend_of_acknowledged_message(self):
        """A resend of an acknowledged message after a reconnect repeats the first answer
        and stores nothing new, even if its body differs."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        rid = request_id()
        first = yield alice.request("msg", id=rid, to="bob", message="one")
        yield quit_(alice)
        alice = yield login(self, server, "alice")
        again = yield alice.request("msg", id=rid, to="bob", message="one, edited")
        self.assertEqual((again["msg_id"], again["time"]), (first["msg_id"], first["time"]))
        stored = yield rows(server, "SELECT body FROM messages")
        self.assertEqual(stored, [("one",)])

    @defer.inlineCallbacks
    def test_same_request_id_from_two_senders(self):
        """Request ids are per sender: two senders may use the same id for two messages."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        rid = request_id()
        one = yield alice.request("msg", id=rid, to="carol", message="from alice")
        two = yield bob.request("msg", id=rid, to="carol", message="from bob")
        self.assertNotEqual(one["msg_id"], two["msg_id"])
        stored = yield count(server, "messages")
        self.assertEqual(stored, 2)


class HistoryTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_history_pages_back_in_time(self):
        """history returns the conversation with one user, oldest first within a page,
        pages backwards with 'before', and leaves other conversations out."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        conversation = []
        for i in range(7):
            sender, to = (alice, "bob") if i % 3 else (bob, "alice")
            reply = yield sender.request("msg", to=to, message=f"c{i}")
            conversation.append((reply["msg_id"], f"c{i}"))
        yield carol.request("msg", to="alice", message="other chat")
        yield alice.request("msg", to="carol", message="other chat too")
        pages, before = [], None
        while True:
            fields = {"with": "BOB", "limit": 3}
            if before is not None:
                fields["before"] = before
            reply = yield alice.request("history", **fields)
            self.assertEqual(reply["response"], 202)
            page = [(m["msg_id"], m["message"]) for m in reply["alert"]]
            self.assertEqual(page, sorted(page))
            pages.insert(0, page)
            if not reply["more"]:
                break
            before = page[0][0]
        self.assertEqual([len(p) for p in pages], [1, 3, 3])
        self.assertEqual([m for p in pages for m in p], conversation)
        reply = yield bob.request("history", **{"with": "alice"})
        self.assertEqual([(m["msg_id"], m["message"]) for m in reply["alert"]], conversation)
        self.assertEqual({(m["from"], m["to"]) for m in reply["alert"]},
                         {("alice", "bob"), ("bob", "alice")})

    @defer.inlineCallbacks
    def test_history_errors(self):
        """history with an unknown user is 404; a limit above 200 is 400."""
        server, (alice,) = yield server_with(self, "alice")
        reply = yield alice.request("history", **{"with": "nobody"})
        self.assertEqual(reply["response"], 404)
        reply = yield alice.request("history", **{"with": "alice", "limit": 201})
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "'limit' must be between 1 and 200"))


class DeletedAccountTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_message_to_account_deleted_behind_the_cache(self):
        """A recipient deleted outside the server (messenger-admin) while cached gives 404,
        not a stored message or a server error; adding it as a contact too."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("msg", to="bob", message="cached now")
        yield quit_(bob)

        def delete_txn(txn):
            txn.execute("DELETE FROM users WHERE name_lower = 'bob'")
        yield server.db.write(delete_txn)
        reply = yield alice.request("msg", to="bob", message="gone?")
        self.assertEqual(reply["response"], 404)
        reply = yield alice.request("add_contact", user_id="bob")
        self.assertEqual(reply["response"], 404)
        stored = yield count(server, "messages")
        self.assertEqual(stored, 0)

    @defer.inlineCallbacks
    def test_sender_deleted_behind_the_session(self):
        """A session whose own account was deleted outside the server gets 401 for a
        message and is closed."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")

        def delete_txn(txn):
            txn.execute("DELETE FROM users WHERE name_lower = 'alice'")
        yield server.db.write(delete_txn)
        reply = yield alice.request("msg", to="bob", message="am I here?")
        self.assertEqual((reply["response"], reply["error"]),
                         (401, "your account no longer exists"))
        yield alice.closed
        self.assertFalse(alice.connected_)


class ConnectionStaysUpTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_errors_keep_the_session(self):
        """After 404, 409 and 400 replies the same connection still sends messages."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        for action, fields in (("msg", {"to": "nobody", "message": "x"}),
                               ("add_contact", {"user_id": "alice"}),
                               ("history", {"with": "ghost"})):
            reply = yield alice.request(action, **fields)
            self.assertGreaterEqual(reply["response"], 400)
        reply = yield alice.request("msg", to="bob", message="still here")
        self.assertEqual(reply["response"], 200)
        self.assertTrue(alice.connected_)



class FrameTests(unittest.TestCase):
    """The message path writes its two frames without the generic encoder."""

    BODIES = ["plain", 'quote " and back\\slash', "ctrl \x00\x01\n\t\x1f\x7f", "é ✓ 🎉 \u2028",
              "</script>", "x" * 5000]

    def test_push_frame_is_the_encoded_push(self):
        """push_frame gives byte for byte what jim.encode gives for the push dict."""
        for body in self.BODIES:
            for created in (1767225600.25, 1795455188.3589005, 12, 1e-7):
                expected = jim.encode({"action": "msg", "msg_id": 42, "time": created,
                                       "from": "al.ice_1", "to": "Bob-2", "message": body})
                frame = messages.push_frame(42, created, "al.ice_1", "Bob-2", body)
                self.assertEqual(frame, expected)
                self.assertEqual(jim.decode(frame)["message"], body)

    def test_ack_frame_is_the_encoded_reply(self):
        """ack_payload gives what jim.encode gives for the 200 reply with id and time."""
        rid = request_id()
        for created in (1767225600.25, 3, 1795455188.3589005):
            expected = jim.encode({"response": 200, "msg_id": 7, "time": created, "id": rid})
            self.assertEqual(replies.ack_payload(rid, 7, created), expected)
            self.assertEqual(replies.encode_reply(rid, replies.Ack(7, created), 0.0),
                             expected)


class NoteToSelfTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_message_to_yourself(self):
        """A message to oneself is stored, pushed to one's own session and synced."""
        server, (alice,) = yield server_with(self, "alice")
        reply = yield alice.request("msg", to="alice", message="remember the milk")
        self.assertEqual(reply["response"], 200)
        push = yield alice.wait_push("msg")
        self.assertEqual((push["msg_id"], push["from"], push["to"]),
                         (reply["msg_id"], "alice", "alice"))
        synced = yield alice.request("sync", since=0)
        self.assertEqual([m["message"] for m in synced["alert"]], ["remember the milk"])


class ThreeClientStoryTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_issue_scenario(self):
        """A adds B and they chat live; C, offline meanwhile, gets on login through sync
        every message sent to it, exactly once and in order, and nothing else."""
        server, (a, b, c) = yield server_with(self, "anna", "ben", "cleo")
        yield quit_(c)
        reply = yield a.request("add_contact", user_id="ben")
        self.assertEqual(reply["response"], 201)
        to_c = []
        for i in range(3):
            live = yield a.request("msg", to="ben", message=f"live {i}")
            push = yield b.wait_push("msg")
            self.assertEqual((push["msg_id"], push["message"]), (live["msg_id"], f"live {i}"))
            answer = yield b.request("msg", to="anna", message=f"re {i}")
            push = yield a.wait_push("msg")
            self.assertEqual(push["msg_id"], answer["msg_id"])
            for sender in (a, b):
                stored = yield sender.request("msg", to="cleo", message=f"for cleo {i}")
                to_c.append((stored["msg_id"], f"for cleo {i}"))
        c = yield login(self, server, "cleo")
        synced = yield c.request("sync", since=0)
        self.assertEqual([(m["msg_id"], m["message"]) for m in synced["alert"]], to_c)
        again = yield c.request("sync", since=to_c[-1][0])
        self.assertEqual(again["alert"], [])


class ContactsTestsOnPostgres(OnPostgres, ContactsTests):
    """The same on a PostgreSQL store."""


class DirectMessageTestsOnPostgres(OnPostgres, DirectMessageTests):
    """The same on a PostgreSQL store."""


class SyncTestsOnPostgres(OnPostgres, SyncTests):
    """The same on a PostgreSQL store."""


class ResendTestsOnPostgres(OnPostgres, ResendTests):
    """The same on a PostgreSQL store."""


class HistoryTestsOnPostgres(OnPostgres, HistoryTests):
    """The same on a PostgreSQL store."""


class DeletedAccountTestsOnPostgres(OnPostgres, DeletedAccountTests):
    """The same on a PostgreSQL store."""


class ConnectionStaysUpTestsOnPostgres(OnPostgres, ConnectionStaysUpTests):
    """The same on a PostgreSQL store."""


class FrameTestsOnPostgres(OnPostgres, FrameTests):
    """The same on a PostgreSQL store."""


class NoteToSelfTestsOnPostgres(OnPostgres, NoteToSelfTests):
    """The same on a PostgreSQL store."""


class ThreeClientStoryTestsOnPostgres(OnPostgres, ThreeClientStoryTests):
    """The same on a PostgreSQL store."""
