"""Bad input on every action over a real server: wrong types, missing fields, huge strings
and SQL metacharacters get a 400 with a readable error naming the field, the connection
stays up, and nothing is stored."""

from __future__ import annotations

import json
import os
import time

from twisted.internet import defer
from twisted.trial import unittest

from messenger.wire import jim
from tests.server.people import barrier, rows, server_with, snapshot
from tests.support import jimclient
from tests.support.services import OnPostgres

HUGE = "x" * 12_000  # over every field limit, under the 16 KiB frame limit before login
SQL_NAMES = ["x'; DROP TABLE users; --", "bob\" OR 1=1 --", "a%b", "robert');--", "a b",
             "é-accent", "_leading", "ab"]

LOGIN = {"account_name": "alice", "password": "correct horse"}
GOOD_SHA = "ab" * 32
FILE = {"name": "notes.txt", "size": 10, "mime": "text/plain", "sha256": GOOD_SHA}

# action -> [(fields, name of the field the error must mention)]
BEFORE_LOGIN = {
    "register": [
        ({}, "user"),
        ({"user": "alice"}, "user"),
        ({"user": ["alice"]}, "user"),
        ({"user": {"password": "longenough", "email": "a@b.org"}}, "user.account_name"),
        *[({"user": {"account_name": name, "password": "longenough", "email": "a@b.org"}},
           "user.account_name") for name in SQL_NAMES],
        ({"user": {"account_name": 7, "password": "longenough", "email": "a@b.org"}},
         "user.account_name"),
        ({"user": {"account_name": "newbie", "password": "short", "email": "a@b.org"}},
         "user.password"),
        ({"user": {"account_name": "newbie", "password": HUGE, "email": "a@b.org"}},
         "user.password"),
        ({"user": {"account_name": "newbie", "password": "longenough", "email": "nope"}},
         "user.email"),
        ({"user": {"account_name": "newbie", "password": "longenough",
                   "email": "a@b.org' OR '1'='1"}}, "user.email"),
        ({"user": {"account_name": "newbie", "password": "longenough",
                   "email": HUGE + "@b.org"}}, "user.email"),
        ({"user": {"account_name": "newbie", "password": "longenough", "email": "a@b.org"},
          "premium_code": 1234}, "premium_code"),
        ({"user": {"account_name": "newbie", "password": "longenough", "email": "a@b.org"},
          "premium_code": HUGE}, "premium_code"),
        ({"user": {"account_name": "newbie", "password": "longenough", "email": "a@b.org"},
          "remember": "yes"}, "remember"),
    ],
    "authenticate": [
        ({}, "user"),
        ({"user": None}, "user"),
        ({"user": {"account_name": "alice"}}, "user.password"),
        ({"user": {"account_name": "alice", "password": 12345678}}, "user.password"),
        *[({"user": {"account_name": name, "password": "x"}}, "user.account_name")
          for name in SQL_NAMES],
        ({"user": LOGIN, "remember": 1}, "remember"),
    ],
    "resume": [
        ({"token": "t" * 32}, "user"),
        ({"user": {"account_name": "alice"}}, "token"),
        ({"user": {"account_name": "alice"}, "token": "short"}, "token"),
        ({"user": {"account_name": "alice"}, "token": 12345678901234567890}, "token"),
        ({"user": {"account_name": "alice"}, "token": HUGE}, "token"),
    ],
}

AFTER_LOGIN = {
    "set_password": [
        ({"new_password": "new password"}, "old_password"),
        ({"old_password": "correct horse"}, "new_password"),
        ({"old_password": "correct horse", "new_password": "short"}, "new_password"),
        ({"old_password": ["x"], "new_password": "new password"}, "old_password"),
    ],
    "presence": [({}, "status"), ({"status": "offline"}, "status"),
                 ({"status": "ONLINE"}, "status"), ({"status": 1}, "status")],
    "get_contacts": [({"after": 5}, "after"), ({"after": HUGE}, "after"),
                     ({"limit": 0}, "limit"), ({"limit": 5001}, "limit"),
                     ({"limit": "10"}, "limit")],
    "add_contact": [({}, "user_id"), ({"user_id": 42}, "user_id"),
                    ({"user_id": ["bob"]}, "user_id"), ({"user_id": HUGE}, "user_id"),
                    *[({"user_id": name}, "user_id") for name in SQL_NAMES]],
    "del_contact": [({}, "user_id"), ({"user_id": {"name": "bob"}}, "user_id"),
                    *[({"user_id": name}, "user_id") for name in SQL_NAMES]],
    "block_user": [({}, "user_id"), ({"user_id": 42}, "user_id"),
                   ({"user_id": HUGE}, "user_id"),
                   *[({"user_id": name}, "user_id") for name in SQL_NAMES]],
    "unblock_user": [({}, "user_id"), ({"user_id": ["bob"]}, "user_id"),
                     *[({"user_id": name}, "user_id") for name in SQL_NAMES]],
    "get_blocked": [({"after": 5}, "after"), ({"limit": 0}, "limit"),
                    ({"limit": 1001}, "limit"), ({"limit": "10"}, "limit")],
    "search_users": [({}, "query"), ({"query": ""}, "query"), ({"query": "q" * 33}, "query"),
                     ({"query": 5}, "query"), ({"query": "a", "offset": -1}, "offset"),
                     ({"query": "a", "offset": "0"}, "offset"),
                     ({"query": "a", "limit": 0}, "limit"),
                     ({"query": "a", "limit": 51}, "limit"),
                     ({"query": "a", "limit": True}, "limit"),
                     ({"query": "a", "limit": 10.0}, "limit")],
    "msg": [({"message": "hi"}, "to"), ({"to": "bob"}, "message"),
            ({"to": "bob", "group": 1, "message": "hi"}, "group"),
            ({"group": 0, "message": "hi"}, "group"), ({"group": "1", "message": "hi"}, "group"),
            ({"group": 1}, "message"), ({"group": 1, "message": "x" * 20_000}, "message"),
            ({"to": "bob", "message": ""}, "message"),
            ({"to": "bob", "message": 12}, "message"),
            ({"to": "bob", "message": ["hi"]}, "message"),
            ({"to": "bob", "message": "x" * 60_000}, "message"),
            ({"to": "bob", "message": "x" * 20_000}, "message"),
            ({"to": "bob", "message": "\ud800"}, "message"),
            ({"to": "bob", "message": "hi", "from": "x y"}, "from"),
            ({"to": "bob", "message": "hi", "reply_to": 0}, "reply_to"),
            ({"to": "bob", "message": "hi", "reply_to": "1"}, "reply_to"),
            ({"group": 1, "message": "hi", "reply_to": 1.5}, "reply_to"),
            *[({"to": name, "message": "hi"}, "to") for name in SQL_NAMES],
            ({"to": "bob", "attachment": 5}, "attachment"),
            ({"to": "bob", "attachment": {"file_id": 1}, "reply_to": 1}, "reply_to"),
            ({"to": "bob", "attachment": {}}, "attachment.file_id"),
            ({"to": "bob", "attachment": {"file_id": 0}}, "attachment.file_id"),
            ({"to": "bob", "attachment": {"file_id": "1"}}, "attachment.file_id"),
            ({"to": "bob", "attachment": {"file_id": 1, "name": "../etc/passwd"}},
             "attachment.name"),
            ({"to": "bob", "attachment": {"file_id": 1, "name": ".."}}, "attachment.name"),
            ({"to": "bob", "attachment": {"file_id": 1, "name": "a\x00b"}},
             "attachment.name"),
            ({"to": "bob", "attachment": {"file_id": 1, "width": 0}}, "attachment.width"),
            ({"to": "bob", "attachment": {"file_id": 1, "height": 70000}},
             "attachment.height"),
            ({"to": "bob", "attachment": {"file_id": 1, "thumbnail": "not base64!"}},
             "attachment.thumbnail"),
            ({"to": "bob", "attachment": {"file_id": 1, "thumbnail": "QQ"}},
             "attachment.thumbnail"),
            ({"to": "bob", "attachment": {"file_id": 1, "thumbnail": "QUFB" * 5000}},
             "attachment.thumbnail")],
    "edit_msg": [({"message": "x"}, "msg_id"), ({"msg_id": 1}, "message"),
                 ({"msg_id": "1", "message": "x"}, "msg_id"),
                 ({"msg_id": 0, "message": "x"}, "msg_id"),
                 ({"msg_id": 1, "message": ""}, "message"),
                 ({"msg_id": 1, "message": "x" * 20_000}, "message"),
                 ({"msg_id": 1, "message": ["x"]}, "message")],
    "delete_msg": [({}, "msg_id"), ({"msg_id": -1}, "msg_id"), ({"msg_id": True}, "msg_id")],
    "sync_changes": [({"since": -1}, "since"), ({"since": "0"}, "since"),
                     ({"since": 0, "limit": 501}, "limit"), ({"limit": 0}, "limit")],
    "search_messages": [({}, "query"), ({"query": ""}, "query"), ({"query": HUGE}, "query"),
                        ({"query": "q" * 257}, "query"), ({"query": 5}, "query"),
                        ({"query": "?!"}, "query"),
                        ({"query": " ".join(f"w{n}" for n in range(17))}, "query"),
                        ({"query": "a", "with": "bob", "group": 1}, "with"),
                        ({"query": "a", "with": "x'--"}, "with"),
                        ({"query": "a", "group": 0}, "group"),
                        ({"query": "a", "offset": 10001}, "offset"),
                        ({"query": "a", "limit": 51}, "limit")],
    "history": [({}, "with"), ({"with": 3}, "with"), ({"with": "bob", "before": -1}, "before"),
                ({"with": "bob", "group": 1}, "group"), ({"group": -3}, "group"),
                ({"group": 1, "before": "x"}, "before"),
                ({"with": "bob", "before": 1.5}, "before"),
                ({"with": "bob", "limit": 0}, "limit"),
                ({"with": "bob", "limit": 201}, "limit"),
                *[({"with": name}, "with") for name in SQL_NAMES]],
    "sync": [({}, "since"), ({"since": "0"}, "since"), ({"since": -1}, "since"),
             ({"since": 0, "limit": 1001}, "limit"), ({"since": False}, "since")],
    "broadcast": [({}, "message"), ({"message": "x" * 60_000}, "message"),
                  ({"message": "x" * 20_000}, "message"), ({"message": None}, "message")],
    "get_broadcasts": [({"before": "x"}, "before"), ({"limit": 101}, "limit"),
                       ({"limit": -3}, "limit")],
    "admin_list_users": [({"query": ""}, "query"), ({"offset": -1}, "offset"),
                         ({"limit": 201}, "limit"), ({"query": 1}, "query")],
    "admin_set_admin": [({"value": True}, "user_id"), ({"user_id": "bob"}, "value"),
                        ({"user_id": "bob", "value": "true"}, "value"),
                        ({"user_id": "bob", "value": 1}, "value"),
                        *[({"user_id": name, "value": True}, "user_id")
                          for name in SQL_NAMES]],
    "admin_set_premium": [({"user_id": "bob"}, "value"),
                          ({"user_id": "bob", "value": 0}, "value"),
                          ({"user_id": "x'--", "value": True}, "user_id")],
    "admin_lock": [({}, "user_id"), ({"user_id": "bob", "minutes": 0}, "minutes"),
                   ({"user_id": "bob", "minutes": "5"}, "minutes"),
                   ({"user_id": "bob", "minutes": 10**8}, "minutes"),
                   ({"user_id": "1; DELETE FROM users"}, "user_id")],
    "admin_unlock": [({}, "user_id"), ({"user_id": True}, "user_id")],
    "admin_login_history": [({}, "user_id"), ({"user_id": "bob", "before": "1"}, "before"),
                            ({"user_id": "bob", "limit": 500}, "limit")],
    "admin_list_codes": [({"offset": -1}, "offset"), ({"limit": 0}, "limit")],
    "admin_delete_user": [({}, "user_id"), ({"user_id": "*"}, "user_id"),
                          ({"user_id": HUGE}, "user_id")],
    "admin_audit": [({"before": -1}, "before"), ({"limit": 1000}, "limit")],
    "admin_list_groups": [({"query": ""}, "query"), ({"offset": -1}, "offset"),
                          ({"limit": 201}, "limit"), ({"query": ["a"]}, "query")],
    "mark_read": [({"up_to": 1}, "with"), ({"with": "bob"}, "up_to"),
                  ({"with": "bob", "group": 1, "up_to": 1}, "with"),
                  ({"group": 0, "up_to": 1}, "group"), ({"group": "1", "up_to": 1}, "group"),
                  ({"with": "bob", "up_to": -1}, "up_to"),
                  ({"with": "x'--", "up_to": 1}, "with")],
    "group_create": [({}, "name"), ({"name": ""}, "name"), ({"name": 5}, "name"),
                     ({"name": "   "}, "name"), ({"name": "a\nb"}, "name"),
                     ({"name": HUGE}, "name"), ({"name": "n" * 65}, "name"),
                     ({"name": "g", "topic": HUGE}, "topic"),
                     ({"name": "g", "topic": "t" * 1025}, "topic"),
                     ({"name": "g", "topic": "\x00"}, "topic"),
                     ({"name": "g", "members": "bob"}, "members"),
                     ({"name": "g", "members": ["bob", 7]}, "members[1]"),
                     ({"name": "g", "members": ["x'--"]}, "members[0]"),
                     ({"name": "g", "members": ["bob"] * 1001}, "members"),
                     ({"name": "g", "announce_only": "yes"}, "announce_only")],
    "group_list": [({"after": -1}, "after"), ({"after": "1"}, "after"),
                   ({"limit": 0}, "limit"), ({"limit": 501}, "limit")],
    "group_info": [({}, "group"), ({"group": -1}, "group"), ({"group": 1.5}, "group"),
                   ({"group": 1, "after": "x y"}, "after"), ({"group": 1, "limit": 0}, "limit")],
    "group_add": [({"user_id": "bob"}, "group"), ({"group": 1}, "user_id"),
                  ({"group": 1, "user_id": "x'; --"}, "user_id"),
                  ({"group": [1], "user_id": "bob"}, "group")],
    "group_remove": [({"user_id": "bob"}, "group"), ({"group": 1}, "user_id"),
                     ({"group": 1, "user_id": HUGE}, "user_id")],
    "group_leave": [({}, "group"), ({"group": "one"}, "group"), ({"group": 0}, "group")],
    "group_update": [({"name": "x"}, "group"), ({"group": 1}, "name"),
                     ({"group": 1, "name": ""}, "name"), ({"group": 1, "name": "n" * 65}, "name"),
                     ({"group": 1, "topic": 3}, "topic"),
                     ({"group": 1, "announce_only": 1}, "announce_only")],
    "group_set_role": [({"user_id": "bob", "role": "admin"}, "group"),
                       ({"group": 1, "role": "admin"}, "user_id"),
                       ({"group": 1, "user_id": "bob"}, "role"),
                       ({"group": 1, "user_id": "bob", "role": "god"}, "role"),
                       ({"group": 1, "user_id": "bob", "role": "ADMIN"}, "role")],
    "group_delete": [({}, "group"), ({"group": None}, "group"), ({"group": True}, "group")],
    "receipt": [({"with": "bob", "up_to": 1}, "kind"),
                ({"kind": "seen", "with": "bob", "up_to": 1}, "kind"),
                ({"kind": "read", "up_to": 1}, "with"),
                ({"kind": "read", "with": "bob", "group": 1, "up_to": 1}, "with"),
                ({"kind": "read", "with": "bob"}, "up_to"),
                ({"kind": "read", "with": "bob", "up_to": 0}, "up_to"),
                ({"kind": "read", "with": "bob", "up_to": "5"}, "up_to"),
                ({"kind": "delivered", "group": 0, "up_to": 1}, "group"),
                ({"kind": "read", "with": "x'--", "up_to": 1}, "with")],
    "sync_receipts": [({}, "since"), ({"since": -1}, "since"), ({"since": "0"}, "since"),
                      ({"since": 0, "limit": 0}, "limit"),
                      ({"since": 0, "limit": 1001}, "limit")],
    "settings": [({"read_receipts": "no"}, "read_receipts"),
                 ({"read_receipts": 0}, "read_receipts")],
    "typing": [({}, "to"), ({"to": "bob", "group": 1}, "to"), ({"to": 5}, "to"),
               ({"group": -1}, "group"), ({"to": HUGE}, "to"),
               *[({"to": name}, "to") for name in SQL_NAMES]],
    "call_dial": [({}, "user_id"), ({"user_id": "x'--"}, "user_id"),
                  ({"user_id": "bob", "codecs": "opus"}, "codecs"),
                  ({"user_id": "bob", "codecs": [1]}, "codecs[0]")],
    "call_hangup": [({"call_id": 7}, "call_id"), ({"user_id": "x y"}, "user_id"),
                    ({"call_id": HUGE}, "call_id")],
    "file_upload": [({"size": 1, "mime": "text/plain", "sha256": GOOD_SHA}, "name"),
                    ({**FILE, "name": ""}, "name"), ({**FILE, "name": "a/b"}, "name"),
                    ({**FILE, "name": "C:\\x"}, "name"), ({**FILE, "name": "n" * 256}, "name"),
                    ({**FILE, "name": "tab\there"}, "name"), ({**FILE, "name": "  "}, "name"),
                    ({**FILE, "size": -1}, "size"), ({**FILE, "size": 1.5}, "size"),
                    ({**FILE, "size": "10"}, "size"), ({**FILE, "size": 2**53 + 1}, "size"),
                    ({**FILE, "mime": "text"}, "mime"), ({**FILE, "mime": "a/b; x=1"}, "mime"),
                    ({**FILE, "mime": 5}, "mime"), ({**FILE, "sha256": "AB" * 32}, "sha256"),
                    ({**FILE, "sha256": "ab" * 31}, "sha256"),
                    ({**FILE, "sha256": "zz" * 32}, "sha256"),
                    ({**FILE, "sha256": None}, "sha256")],
    "file_finish": [({}, "upload_id"), ({"upload_id": 0}, "upload_id"),
                    ({"upload_id": "7"}, "upload_id"), ({"upload_id": 2**63}, "upload_id")],
    "file_cancel": [({}, "upload_id"), ({"upload_id": -2}, "upload_id")],
    "file_get": [({}, "file_id"), ({"file_id": 0}, "file_id"), ({"file_id": True}, "file_id"),
                 ({"file_id": "x'--"}, "file_id")],
}


def request_escaped(client, action, **fields):
    """Send a request as ASCII JSON (non-ASCII as \\u escapes, so that even a lone
    surrogate can be sent, as a hostile client would); fires with the reply."""
    request_id = os.urandom(16).hex()
    d = defer.Deferred()
    client.pending[request_id] = d
    message = {"action": action, "id": request_id, "time": time.time(), **fields}
    client.sendString(client.channel.seal(json.dumps(message).encode("ascii")))
    return d


class BadInputTests(unittest.TestCase):

    def test_every_action_with_fields_is_covered(self):
        """Each action whose schema has fields has bad-input cases here."""
        with_fields = {action for action, fields in jim.ACTIONS.items() if fields}
        self.assertEqual(with_fields, set(BEFORE_LOGIN) | set(AFTER_LOGIN))

    @defer.inlineCallbacks
    def check_cases(self, client, cases):
        for action, entries in cases.items():
            for fields, field in entries:
                reply = yield request_escaped(client, action, **fields)
                label = f"{action} {str(fields)[:80]}"
                self.assertEqual(reply["response"], 400, label)
                self.assertIsInstance(reply["error"], str, label)
                self.assertIn(f"'{field}'", reply["error"], label)
                self.assertNotIn(HUGE, reply["error"])
                self.assertTrue(client.connected_, label)

    @defer.inlineCallbacks
    def test_before_login(self):
        """register, authenticate and resume refuse bad input with 400 on a connection
        that is not logged in, which stays open and can then log in."""
        server, (alice,) = yield server_with(self, "alice")
        before = yield snapshot(server)
        logins_before = yield rows(server, "SELECT COUNT(*) FROM login_history")
        client = yield jimclient.connect(self, server.tcp_port)
        yield self.check_cases(client, BEFORE_LOGIN)
        after = yield snapshot(server)
        self.assertEqual(after, before)
        logins_after = yield rows(server, "SELECT COUNT(*) FROM login_history")
        self.assertEqual(logins_after, logins_before)
        yield alice.request("quit")
        reply = yield client.request("authenticate", user=LOGIN)
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_after_login(self):
        """Every action of a logged-in user (admin actions by an admin) refuses bad input
        with 400 naming the field; the session stays up and nothing is stored."""
        server, (admin, bob) = yield server_with(self, "admin", "bob")
        before = yield snapshot(server)
        yield self.check_cases(admin, AFTER_LOGIN)
        after = yield snapshot(server)
        self.assertEqual(after, before)
        names = yield rows(server, "SELECT name FROM users ORDER BY id")
        self.assertEqual(names, [("admin",), ("bob",)])
        reply = yield admin.request("msg", to="bob", message="still fine")
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_sql_metacharacters_in_free_text_are_data(self):
        """Quotes, semicolons and comment marks in searches and bodies are stored and
        matched as plain text."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        body = "'); DROP TABLE messages; -- \" OR 1=1 /* %_ */"
        reply = yield alice.request("msg", to="bob", message=body)
        self.assertEqual(reply["response"], 200)
        push = yield bob.wait_push("msg")
        self.assertEqual(push["message"], body)
        for query in ("' OR '1'='1", "%", "a'--", "\"; DROP"):
            reply = yield alice.request("search_users", query=query)
            self.assertEqual((reply["response"], reply["alert"]), (202, []), query)
        stored = yield rows(server, "SELECT body FROM messages")
        self.assertEqual(stored, [(body,)])
        accounts = yield rows(server, "SELECT COUNT(*) FROM users")
        self.assertEqual(accounts, [(2,)])

    @defer.inlineCallbacks
    def test_unknown_keys_are_ignored(self):
        """Extra keys a newer client might send do not disturb a valid request."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("msg", to="bob", message="hi", colour="blue",
                                    nested={"x": [1, 2]})
        self.assertEqual(reply["response"], 200)


    @defer.inlineCallbacks
    def test_receipts_and_typing_that_make_no_sense(self):
        """Well-formed receipts past the last message, for a message of another
        conversation or a group one is not in, and typing to a stranger's group or to
        oneself: refused with a readable error, nothing stored, nothing pushed."""
        server, (alice, bob, cat) = yield server_with(self, "alice", "bob", "cat")
        sent = yield alice.request("msg", to="bob", message="hello")
        elsewhere = yield alice.request("msg", to="cat", message="hi cat")
        group = yield cat.request("group_create", name="cats only")
        gid = group["group"]["group_id"]
        before = yield snapshot(server)
        cases = [
            ("receipt", {"kind": "read", "with": "alice", "up_to": sent["msg_id"] + 99},
             400, "past the last message"),
            ("receipt", {"kind": "delivered", "with": "alice", "up_to": elsewhere["msg_id"]},
             400, "not a message of this conversation"),
            ("receipt", {"kind": "read", "group": gid, "up_to": sent["msg_id"]},
             403, "not a member"),
            ("receipt", {"kind": "read", "group": gid + 1, "up_to": 1}, 403, "not a member"),
            ("typing", {"group": gid}, 403, "not a member"),
            ("typing", {"to": "bob"}, 400, "another user"),
        ]
        for action, fields, code, text in cases:
            reply = yield bob.request(action, **fields)
            self.assertEqual(reply["response"], code, (action, fields))
            self.assertIn(text, reply["error"])
        self.assertEqual((yield snapshot(server)), before)
        yield barrier(alice)
        self.assertEqual([p["action"] for p in alice.pushes if p["action"] != "msg"], [])


class ConversationRefusalTests(unittest.TestCase):
    """Issue 15's bad input: changing someone else's message, a reply into another
    conversation, an empty or huge search: a clear error, and nothing changed."""

    @defer.inlineCallbacks
    def test_refused_and_nothing_changed(self):
        """Each is refused with its code and text; no table changes."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        sent = yield alice.request("msg", to="bob", message="original")
        msg_id = sent["msg_id"]
        before = yield snapshot(server)
        bodies = yield rows(server, "SELECT id, body, edited, deleted FROM messages")
        cases = [
            (bob, "edit_msg", {"msg_id": msg_id, "message": "forged"},
             403, "you may only edit your own messages"),
            (carol, "edit_msg", {"msg_id": msg_id, "message": "forged"},
             404, f"no message {msg_id} that you can see"),
            (carol, "delete_msg", {"msg_id": msg_id},
             404, f"no message {msg_id} that you can see"),
            (alice, "msg", {"to": "carol", "message": "fwd", "reply_to": msg_id},
             404, f"'reply_to': no message {msg_id} in this conversation (a reply quotes"
                  " an earlier message of the same conversation)"),
            (alice, "search_messages", {"query": ""},
             400, "'query' must be 1 to 256 characters long"),
            (alice, "search_messages", {"query": "x" * 5000},
             400, "'query' must be 1 to 256 characters long"),
            (alice, "search_messages", {"query": "*** ---"},
             400, "'query' has no words to search for (letters or digits)"),
        ]
        for client, action, fields, code, text in cases:
            reply = yield client.request(action, **fields)
            self.assertEqual((reply["response"], reply.get("error")), (code, text), action)
        reply = yield bob.request("delete_msg", msg_id=msg_id)
        self.assertEqual(reply["response"], 403)
        self.assertIn("you may only delete your own messages", reply["error"])
        after = yield snapshot(server)
        self.assertEqual(after, before)
        unchanged = yield rows(server, "SELECT id, body, edited, deleted FROM messages")
        self.assertEqual(unchanged, bodies)



class BadInputTestsOnPostgres(OnPostgres, BadInputTests):
    """The same on a PostgreSQL store."""


class ConversationRefusalTestsOnPostgres(OnPostgres, ConversationRefusalTests):
    """The same on a PostgreSQL store."""
