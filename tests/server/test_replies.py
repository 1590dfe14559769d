"""Unit tests of messenger.server.replies: every kind of handler outcome becomes one reply
payload, pages are cut by their encoded size, and nothing over the budget is ever sent."""

from __future__ import annotations

import json

from twisted.python.failure import Failure
from twisted.trial import unittest

from messenger.server import replies
from messenger.server.replies import Ack, Closing, Page, SessionOver, encode_page, encode_reply
from messenger.wire import codes, jim
from messenger.wire.errors import NotFound, ServiceUnavailable, TooManyRequests

RID = "ab" * 16


def decoded(payload: bytes) -> dict:
    return json.loads(payload)


class EncodeReplyTests(unittest.TestCase):

    def test_dict_gets_id_and_time(self) -> None:
        """A dict result gets the request id and the time (unless it has its own)."""
        self.assertEqual(decoded(encode_reply(RID, {"response": 200}, 5.0)),
                         {"response": 200, "id": RID, "time": 5.0})
        self.assertEqual(decoded(encode_reply(RID, {"response": 200, "time": 1.0}, 5.0))
                         ["time"], 1.0)

    def test_ack(self) -> None:
        """An Ack is the fast-path acknowledgement, the same JSON jim.encode would make."""
        payload = encode_reply(RID, Ack(42, 1.5), 9.0)
        self.assertEqual(payload, jim.encode({"response": 200, "msg_id": 42, "time": 1.5,
                                              "id": RID}))

    def test_errors_and_failures(self) -> None:
        """A MessengerError, raised or in a Failure, becomes its own reply (with its
        extra fields); anything else becomes a bare 500 without details."""
        reply = decoded(encode_reply(RID, TooManyRequests("slow down", 2.5), 1.0))
        self.assertEqual((reply["response"], reply["error"], reply["retry_after"]),
                         (429, "slow down", 2.5))
        reply = decoded(encode_reply(RID, Failure(NotFound("no such user")), 1.0))
        self.assertEqual((reply["response"], reply["id"]), (404, RID))
        reply = decoded(encode_reply(None, ServiceUnavailable("busy", 2.0), 1.0))
        self.assertEqual((reply["response"], reply["id"]), (503, None))
        reply = decoded(encode_reply(RID, Failure(KeyError("secret detail")), 1.0))
        self.assertEqual(reply, {"response": 500, "error": replies.INTERNAL_ERROR,
                                 "id": RID, "time": 1.0})
        self.assertEqual(replies.error_body(RuntimeError("x"))["response"], 500)

    def test_closing_and_session_over(self) -> None:
        """Closing(body) is answered with its body; SessionOver is a 401 error."""
        self.assertEqual(decoded(encode_reply(RID, Closing({"response": 200,
                                                            "alert": "bye"}), 2.0)),
                         {"response": 200, "alert": "bye", "id": RID, "time": 2.0})
        self.assertEqual(decoded(encode_reply(RID, SessionOver("gone"), 2.0))["response"],
                         codes.NOT_AUTHORISED)

    def test_too_big_or_unencodable_becomes_500(self) -> None:
        """A result over the budget, or one that cannot be encoded, is never sent: a 500
        takes its place and the traceback goes to the log."""
        reply = decoded(encode_reply(RID, {"response": 200, "blob": "x" * 200}, 1.0,
                                     budget=100))
        self.assertEqual(reply["response"], 500)
        reply = decoded(encode_reply(RID, {"response": 200, "bad": object()}, 1.0))
        self.assertEqual((reply["response"], reply["id"]), (500, RID))
        reply = decoded(encode_reply(RID, {"response": 200, "nan": float("nan")}, 1.0))
        self.assertEqual(reply["response"], 500)
        # Both went to the log with their tracebacks (never to the client).
        self.assertEqual(len(self.flushLoggedErrors(TypeError, ValueError)), 2)


class EncodePageTests(unittest.TestCase):

    def items(self, count: int, body: str = "x" * 90) -> list[dict]:
        return [{"n": n, "message": body} for n in range(count)]

    def test_everything_fits(self) -> None:
        """A page that fits goes whole, with the head's fields and more=false."""
        page = Page(self.items(3), head={"extra": 1})
        reply = decoded(encode_page(RID, page, 1.0))
        self.assertEqual(reply["alert"], self.items(3))
        self.assertEqual((reply["response"], reply["more"], reply["extra"], reply["id"]),
                         (codes.ACCEPTED, False, 1, RID))
        self.assertEqual(decoded(encode_page(RID, Page([]), 1.0))["alert"], [])

    def test_more_from_the_query(self) -> None:
        """more=true when the caller's query had more rows, even if all items fit."""
        self.assertTrue(decoded(encode_page(RID, Page(self.items(2), more=True), 1.0))
                        ["more"])

    def test_cut_by_encoded_size(self) -> None:
        """Items of control characters take six bytes a character in JSON: the page is
        cut by what they encode to, exactly filling the budget and saying more."""
        page = Page(self.items(200, "\x01" * 100), key="messages", code=200)
        budget = 20_000
        payload = encode_page(RID, page, 1.0, budget)
        reply = decoded(payload)
        self.assertLessEqual(len(payload), budget)
        self.assertTrue(reply["more"])
        kept = len(reply["messages"])
        self.assertEqual(reply["messages"], self.items(kept, "\x01" * 100))
        one_more = encode_page(RID, Page(self.items(kept + 1, "\x01" * 100),
                                         key="messages", code=200), 1.0, 10**9)
        self.assertGreater(len(one_more), budget)
        self.assertEqual(payload, jim.encode(reply))

    def test_keep_last(self) -> None:
        """keep_last keeps the newest items of an oldest-first list, in order."""
        page = Page(self.items(100), keep_last=True)
        reply = decoded(encode_page(RID, page, 1.0, budget=2000))
        numbers = [item["n"] for item in reply["alert"]]
        self.assertEqual(numbers, list(range(100 - len(numbers), 100)))
        self.assertTrue(reply["more"])

    def test_one_item_always_goes(self) -> None:
        """A single item larger than the room left is still sent (bodies are far below the
        budget in practice; a page is never empty when there is something)."""
        reply = decoded(encode_page(RID, Page(self.items(2, "y" * 500)), 1.0, budget=300))
        self.assertEqual(len(reply["alert"]), 1)
        self.assertTrue(reply["more"])

    def test_page_through_encode_reply(self) -> None:
        """encode_reply hands a Page to encode_page with the default 1 MiB budget."""
        page = Page(self.items(30_000))
        payload = encode_reply(RID, page, 1.0)
        self.assertLessEqual(len(payload), jim.MAX_SERVER_PAYLOAD)
        self.assertGreater(len(payload), jim.MAX_SERVER_PAYLOAD - 200)
        self.assertTrue(decoded(payload)["more"])
