"""Tests for messenger.client.core's messages: the outbox resending with original ids,
the inbox merging sync and pushes, and the pushes reaching their observers, on a
scripted network (`tests.client.core_case`) and a task.Clock."""

from __future__ import annotations

from messenger.client.errors import (
    ConnectionFailed,
    NotConnected,
)
from messenger.wire.errors import (
    NotFound,
    ServerError,
    TooManyRequests,
)
from tests.client.core_case import ALICE, CoreTestCase, message
from tests.client.fakes import FakeProtocol


class OutboxCoreTests(CoreTestCase):
    def test_unacknowledged_messages_are_resent_with_their_original_ids(self):
        """Messages whose acknowledgement was lost with the connection are sent again on
        the next session with the same request ids; each Deferred fires once."""
        connection = self.logged_in()
        statuses = []
        self.client.subscribe("message_status", lambda e: statuses.append(e.status))
        sent = [self.client.send_message("bob", f"m{i}") for i in range(3)]
        first = connection.take("msg")
        self.assertEqual(len(connection.pending("msg")), 1)      # cold recipient: alone
        connection.answer(first, response=200, msg_id=10)
        in_flight = connection.pending("msg")
        original_ids = [r.id for r in in_flight]
        self.assertEqual([r.fields["message"] for r in in_flight], ["m1", "m2"])
        connection.lose()
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        second.answer(second.take("msg"), response=200, msg_id=11)
        second.answer(second.take("msg"), response=200, msg_id=12)
        resent = [r for r in second.requests if r.action == "msg"]
        self.assertEqual([r.id for r in resent], original_ids)
        self.assertEqual([self.successResultOf(d)["msg_id"] for d in sent], [10, 11, 12])
        self.assertEqual(statuses, ["pending"] * 3 + ["acked"] * 3)
        self.assertEqual(self.client.pending_messages(), [])

    def test_messages_written_while_away_wait_for_the_session(self):
        """A message queued while reconnecting is sent after the next login."""
        self.logged_in().lose()
        entry = self.client.queue_message("bob", "later")
        self.assertEqual(entry.status, "pending")
        self.clock.advance(1.0)
        connection = self.come_online(login_action="resume")
        self.assertEqual(connection.take("msg").id, entry.request_id)

    def test_refused_message_fails_for_good(self):
        """404 fails the message, reports it, and never resends it."""
        connection = self.logged_in()
        d = self.client.send_message("nobody", "hi")
        connection.refuse(connection.take("msg"), NotFound("no user named 'nobody'"))
        self.failureResultOf(d, NotFound)
        connection.lose()
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        self.assertEqual(second.pending("msg"), [])

    def test_rate_limited_message_is_resent_with_a_fresh_id_after_retry_after(self):
        """429 (nothing stored, and the session refuses the id now) waits retry_after and
        resends with a new id."""
        connection = self.logged_in()
        d = self.client.send_message("bob", "hi")
        first = connection.take("msg")
        connection.refuse(first, TooManyRequests("slow down", 2.0))
        self.assertEqual(connection.pending("msg"), [])
        self.clock.advance(1.9)
        self.assertEqual(connection.pending("msg"), [])
        self.clock.advance(0.1)
        again = connection.take("msg")
        self.assertNotEqual(again.id, first.id)
        connection.answer(again, response=200, msg_id=5)
        self.assertEqual(self.successResultOf(d)["msg_id"], 5)

    def test_server_error_resends_the_same_id_on_a_new_session(self):
        """A 500 leaves it unknown whether the message was stored: the client reconnects
        and resends with the same id, which the server stores at most once."""
        connection = self.logged_in()
        d = self.client.send_message("bob", "hi")
        first = connection.take("msg")
        connection.refuse(first, ServerError("the message could not be stored"))
        self.assertIsInstance(connection.aborted, ConnectionFailed)
        self.clock.advance(1.0)
        second = self.come_online(login_action="resume")
        resent = second.take("msg")
        self.assertEqual(resent.id, first.id)
        second.answer(resent, response=200, msg_id=3)
        self.assertEqual(self.successResultOf(d)["msg_id"], 3)

    def test_sending_needs_a_login(self):
        """Without any login there is no sender: queueing is refused."""
        self.failureResultOf(self.client.send_message("bob", "hi"), NotConnected)
        self.assertRaises(NotConnected, self.client.queue_message, "bob", "hi")

    def test_messages_of_another_account_are_not_sent_as_this_one(self):
        """Messages pending for alice fail when the next login is bob's."""
        self.logged_in().lose()
        d = self.client.send_message("carol", "from alice")
        self.successResultOf(self.client.stop())
        login = self.client.login("bob", "pw")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200,
                          user=dict(ALICE, account_name="bob"), token="t2")
        self.failureResultOf(d, NotConnected)
        connection.answer(connection.take("sync"), response=202, alert=[], more=False)
        self.successResultOf(login)
        self.assertEqual(connection.pending("msg"), [])


class InboxCoreTests(CoreTestCase):
    def setUp(self):
        super().setUp()
        self.received = []
        self.client.subscribe("message", self.received.append)

    def ids(self):
        return [m.msg_id for m in self.received]

    def test_pushes_during_sync_merge_with_it_once_and_in_order(self):
        """After a reconnect, pushes that arrive while sync runs are held and merged:
        every message once, in msg_id order."""
        connection = self.logged_in()
        connection.push(message(1))
        connection.push(message(2))
        connection.lose()
        self.clock.advance(1.0)
        second = self.net.accept()
        second.establish()
        second.answer(second.take("resume"), response=200, user=ALICE)
        sync = second.take("sync")
        self.assertEqual(sync.fields["since"], 2)
        second.push(message(5))
        second.push(message(4))
        self.assertEqual(self.ids(), [1, 2])
        second.answer(sync, response=202, alert=[message(3), message(4)], more=False)
        second.push(message(5))
        second.push(message(6))
        self.assertEqual(self.ids(), [1, 2, 3, 4, 5, 6])
        self.assertEqual([m.from_sync for m in self.received],
                         [False, False, True, True, False, False])

    def logged_in_until_sync(self) -> FakeProtocol:
        """Logged in with a password; the first sync request waits for its answer."""
        self.client.login("alice", "correct horse")
        connection = self.net.accept()
        connection.establish()
        connection.answer(connection.take("authenticate"), response=200, user=ALICE,
                          token="t")
        return connection

    def test_sync_follows_more_pages(self):
        """A sync reply with more=True is followed by the next page from its last id."""
        connection = self.logged_in_until_sync()
        connection.answer(connection.take("sync"), response=202,
                          alert=[message(1), message(2)], more=True)
        page2 = connection.take("sync")
        self.assertEqual(page2.fields["since"], 2)
        self.assertEqual(self.client.state.name, "syncing")
        connection.answer(page2, response=202, alert=[message(3)], more=False)
        self.assertEqual(self.ids(), [1, 2, 3])
        self.assertEqual(self.client.state.name, "online")

    def test_cursor_is_saved_and_a_restart_syncs_from_it(self):
        """The last delivered id is saved (debounced) and the next start syncs from it."""
        connection = self.logged_in()
        for msg_id in (3, 7):
            connection.push(message(msg_id))
        self.assertEqual(self.saved_account()["last_msg_id"], 0)
        self.clock.advance(1.0)
        self.assertEqual(self.saved_account()["last_msg_id"], 7)
        self.successResultOf(self.client.stop())
        client = self.make_client()
        started = client.start()
        second = self.net.accept()
        second.establish()
        second.answer(second.take("resume"), response=200, user=ALICE)
        self.assertEqual(second.take("sync").fields["since"], 7)
        self.successResultOf(client.stop())
        self.failureResultOf(started, NotConnected)

    def test_malformed_sync_entries_are_skipped(self):
        """Entries of a sync page that lack fields are dropped, the rest delivered."""
        connection = self.logged_in_until_sync()
        connection.answer(connection.take("sync"), response=202,
                          alert=[{"msg_id": "x"}, message(4)], more=False)
        self.assertEqual(self.ids(), [4])


class PushTests(CoreTestCase):
    def test_each_push_reaches_its_observers(self):
        """presence, broadcast, account, notice and call pushes arrive as records."""
        connection = self.logged_in()
        seen: dict[str, list] = {}
        for kind in ("presence", "broadcast", "account", "notice", "call", "push"):
            self.client.subscribe(kind, seen.setdefault(kind, []).append)
        connection.push({"action": "presence", "account_name": "bob", "status": "away"})
        connection.push({"action": "broadcast", "broadcast_id": 4, "from": "carol",
                         "message": "hello all"})
        connection.push({"action": "account", "user": dict(ALICE, premium=True)})
        connection.push({"action": "notice", "level": 101, "message": "locked"})
        connection.push({"action": "call_ring", "call_id": "ab", "from": "bob"})
        connection.push({"action": "something_new", "x": 1})
        self.assertEqual((seen["presence"][0].account_name, seen["presence"][0].status),
                         ("bob", "away"))
        self.assertEqual(seen["broadcast"][0].text, "hello all")
        self.assertTrue(seen["account"][0].premium and self.client.account.premium)
        self.assertEqual((seen["notice"][0].level, seen["notice"][0].message),
                         (101, "locked"))
        self.assertEqual((seen["call"][0].kind, seen["call"][0].fields["from"]),
                         ("call_ring", "bob"))
        self.assertEqual([p["action"] for p in seen["push"]],
                         ["presence", "broadcast", "account", "notice", "call_ring",
                          "something_new"])

    def test_malformed_push_is_dropped_without_harm(self):
        """A push missing fields is logged and dropped; the next one still arrives."""
        connection = self.logged_in()
        seen = []
        self.client.subscribe("broadcast", seen.append)
        connection.push({"action": "broadcast", "message": "no id"})
        connection.push({"action": "broadcast", "broadcast_id": 1, "from": "c",
                         "message": "ok"})
        self.assertEqual([b.text for b in seen], ["ok"])

    def test_orphan_error_reply_becomes_a_notice(self):
        """The server's id-less error ('login timed out') is shown as a notice."""
        connection = self.logged_in()
        notices = []
        self.client.subscribe("notice", notices.append)
        connection.on_orphan_reply({"response": 401, "error": "login timed out"})
        self.assertEqual((notices[0].level, notices[0].message), (401, "login timed out"))

    def test_actions_send_the_server_field_names(self):
        """Action methods send the handlers' field names and leave out unset options."""
        connection = self.logged_in()
        calls = [self.client.history("bob", limit=20), self.client.add_contact("bob"),
                 self.client.admin_lock("bob"), self.client.call_hangup(call_id="c1")]
        sent = {r.action: r.fields for r in connection.requests[-4:]}
        self.assertEqual(sent, {"history": {"with": "bob", "limit": 20},
                                "add_contact": {"user_id": "bob"},
                                "admin_lock": {"user_id": "bob"},
                                "call_hangup": {"call_id": "c1"}})
        for request in connection.pending():
            connection.answer(request, response=200)
        self.assertEqual([self.successResultOf(d)["response"] for d in calls], [200] * 4)

    def test_set_password_keeps_the_new_token(self):
        """The new token from set_password replaces the saved one."""
        connection = self.logged_in()
        d = self.client.set_password("correct horse", "battery staple")
        connection.answer(connection.take("set_password"), response=200, token="tok-2",
                          token_expires=5)
        self.successResultOf(d)
        self.assertEqual(self.saved_account()["token"], "tok-2")
