"""Black-box tests of receipts, the receipts setting and typing on a real ``twistd
messenger`` with the independent client (tests/independent/client.py). Every
expectation is taken from docs/PROTOCOL.md, sections "Receipts" and "Typing"."""

import time

from tests.independent import client as jim
from tests.independent.test_independent_client import PASSWORD, SQL, ServerTestCase

NOT_MEMBER = "you are not a member of this group"
PAST_END = "'up_to' is past the last message of this conversation"
ELSEWHERE = "'up_to' is not a message of this conversation that you can see"


def receipt(c, kind, up_to, **conversation):
    return c.request("receipt", kind=kind, up_to=up_to, **conversation)


class ReceiptTests(ServerTestCase):

    def test_delivered_and_read_with_pushes(self):
        """A delivered and a read receipt each answer with the values the others see
        and push a receipt without `group` to the sender; an older one changes
        nothing; a read receipt moves the reader's marker (get_unread)."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        one = self.assertReply(a.request("msg", to=bob, message="one"), 200)["msg_id"]
        two = self.assertReply(a.request("msg", to=bob, message="two"), 200)["msg_id"]
        self.assertReply(receipt(b, "delivered", two, **{"with": alice}), 200,
                         delivered_up_to=two, read_up_to=0)
        push = a.wait_push("receipt")
        self.assertEqual({k: push[k] for k in ("reader", "delivered_up_to", "read_up_to")},
                         {"reader": bob, "delivered_up_to": two, "read_up_to": 0})
        self.assertNotIn("group", push)
        self.assertIsInstance(push["seq"], int)
        self.assertIsInstance(push["time"], (int, float))
        self.assertReply(receipt(b, "read", one, **{"with": alice}), 200,
                         delivered_up_to=two, read_up_to=one)
        later = a.wait_push("receipt")
        self.assertGreater(later["seq"], push["seq"])
        self.assertReply(receipt(b, "read", one, **{"with": alice}), 200,
                         delivered_up_to=two, read_up_to=one)
        self.assertNoPush(a, "receipt")
        unread = self.assertReply(b.request("get_unread"), 200)
        self.assertEqual(unread["direct"], [{"with": alice, "unread": 1, "read_up_to": one}])

    def test_offline_sender_uses_sync_receipts(self):
        """Receipts made while the sender was away are in sync_receipts after login,
        one per reader and conversation, oldest change first; paging with `seq`."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        c, cat = self.user("cat")
        to_bob = self.assertReply(a.request("msg", to=bob, message="hi"), 200)["msg_id"]
        to_cat = self.assertReply(a.request("msg", to=cat, message="hi"), 200)["msg_id"]
        a.request("quit")
        a.wait_closed()
        self.assertReply(receipt(b, "delivered", to_bob, **{"with": alice}), 200)
        self.assertReply(receipt(c, "read", to_cat, **{"with": alice}), 200)
        self.assertReply(receipt(b, "read", to_bob, **{"with": alice}), 200)
        a2 = self.connect()
        self.assertReply(a2.login(alice, PASSWORD), 200)
        page = self.assertReply(a2.request("sync_receipts", since=0), 202)
        self.assertFalse(page["more"])
        self.assertEqual([(r["reader"], r["delivered_up_to"], r["read_up_to"])
                          for r in page["alert"]],
                         [(cat, to_cat, to_cat), (bob, to_bob, to_bob)])
        first = self.assertReply(a2.request("sync_receipts", since=0, limit=1), 202)
        self.assertTrue(first["more"])
        rest = self.assertReply(a2.request("sync_receipts", since=first["alert"][-1]["seq"]),
                                202)
        self.assertEqual([r["reader"] for r in first["alert"] + rest["alert"]], [cat, bob])
        self.assertEqual(self.assertReply(a2.request(
            "sync_receipts", since=page["alert"][-1]["seq"]), 202)["alert"], [])

    def test_group_receipts_and_setting(self):
        """In a group the push carries `group` and goes to the senders covered; with
        read receipts off, others see delivery only."""
        t, teacher = self.user("teacher")
        a, ann = self.user("ann")
        b, ben = self.user("ben")
        gid = self.assertReply(t.request("group_create", name="G", members=[ann, ben]),
                               201)["group"]["group_id"]
        sent = self.assertReply(t.request("msg", group=gid, message="hello"), 200)["msg_id"]
        self.assertReply(b.request("settings"), 200, settings={"read_receipts": True})
        self.assertReply(b.request("settings", read_receipts=False), 200,
                         settings={"read_receipts": False})
        self.assertReply(receipt(a, "read", sent, group=gid), 200, read_up_to=sent)
        push = t.wait_push("receipt")
        self.assertEqual((push["reader"], push["group"], push["read_up_to"]),
                         (ann, gid, sent))
        self.assertReply(receipt(b, "read", sent, group=gid), 200, delivered_up_to=sent,
                         read_up_to=0)
        push = t.wait_push("receipt")
        self.assertEqual((push["reader"], push["delivered_up_to"], push["read_up_to"]),
                         (ben, sent, 0))
        self.assertNoPush(a, "receipt")

    def test_refusals(self):
        """Past the last message, another conversation's message, oneself, an unknown
        person, a group one is not in: the documented errors."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        c, cat = self.user("cat")
        mine = self.assertReply(a.request("msg", to=bob, message="x"), 200)["msg_id"]
        other = self.assertReply(c.request("msg", to=alice, message="y"), 200)["msg_id"]
        gid = self.assertReply(c.request("group_create", name="cats"),
                               201)["group"]["group_id"]
        self.assertReply(receipt(b, "read", mine + 10 ** 6, **{"with": alice}), 400,
                         error=PAST_END)
        self.assertReply(receipt(b, "read", other, **{"with": alice}), 400, error=ELSEWHERE)
        self.assertReply(receipt(b, "read", mine, **{"with": bob}), 400,
                         error="'with' must name another user")
        self.assertReply(receipt(b, "read", mine, **{"with": "nobody-here"}), 404,
                         error="no user named 'nobody-here'")
        self.assertReply(receipt(b, "read", mine, group=gid), 403, error=NOT_MEMBER)
        self.assertNoPush(a, "receipt")


class TypingTests(ServerTestCase):

    def test_typing_direct_and_group(self):
        """typing answers 200 and pushes `from` and `to` (or `group`) to the others."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        c, cat = self.user("cat")
        gid = self.assertReply(a.request("group_create", name="G", members=[bob]),
                               201)["group"]["group_id"]
        self.assertReply(a.request("typing", to=bob), 200)
        push = b.wait_push("typing")
        self.assertEqual((push["from"], push["to"]), (alice, bob))
        self.assertReply(b.request("typing", group=gid), 200)
        push = a.wait_push("typing")
        self.assertEqual((push["from"], push["group"]), (bob, gid))
        self.assertNoPush(b, "typing")
        self.assertReply(c.request("typing", group=gid), 403, error=NOT_MEMBER)
        self.assertReply(a.request("typing", to=alice), 400,
                         error="'to' must name another user")
        self.assertReply(a.request("typing", to="nobody-here"), 404,
                         error="no user named 'nobody-here'")


BAD_INPUT = {
    "receipt": [{}, {"kind": "read", "up_to": 1}, {"kind": "seen", "with": "second",
                                                   "up_to": 1},
                {"kind": "read", "with": "second", "up_to": 0},
                {"kind": "read", "with": "second", "group": 1, "up_to": 1},
                {"kind": "read", "with": SQL, "up_to": 1}],
    "sync_receipts": [{}, {"since": -1}, {"since": 0, "limit": 1001}],
    "settings": [{"read_receipts": "off"}, {"read_receipts": 1}],
    "typing": [{}, {"to": "second", "group": 1}, {"group": 0}, {"to": SQL}],
}


class ReceiptBadInputTests(ServerTestCase):

    def test_every_variant(self):
        """Each is refused with 400 and a short error; the session stays up."""
        c, _ = self.user("bad")
        for action, variants in BAD_INPUT.items():
            for fields in variants:
                reply = c.send_request({"action": action, "id": jim.new_id(),
                                        "time": time.time(), **fields})
                self.assertEqual(reply.get("response"), 400, (action, fields, reply))
                self.assertLess(len(reply["error"]), 500)
                self.assertStillUp(c)
