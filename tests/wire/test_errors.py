"""Tests for messenger.wire.errors and messenger.wire.codes."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.wire import codes, errors


class CodesTests(SynchronousTestCase):
    """The JIM code table."""

    def test_design_codes(self) -> None:
        """codes.ALL is the list of JIM codes in DESIGN.md section 3, plus 503."""
        self.assertEqual(codes.ALL, {100, 101, 200, 201, 202, 400, 401, 402, 403, 404, 409,
                                     410, 429, 500, 503})

    def test_is_success(self) -> None:
        """1xx and 2xx are successes; 4xx and 5xx are not."""
        for code in (100, 101, 200, 201, 202):
            self.assertTrue(codes.is_success(code))
        for code in (400, 401, 402, 403, 404, 409, 410, 429, 500, 503):
            self.assertFalse(codes.is_success(code))


class MessengerErrorTests(SynchronousTestCase):
    """MessengerError and its subclasses."""

    def test_subclass_codes(self) -> None:
        """Each subclass carries its JIM code."""
        expected = {
            errors.BadRequest: 400, errors.NotAuthorised: 401, errors.WrongCredentials: 402,
            errors.Forbidden: 403, errors.NotFound: 404, errors.Conflict: 409,
            errors.Gone: 410, errors.TooManyRequests: 429, errors.ServerError: 500,
            errors.MessengerError: 500,
        }
        for cls, code in expected.items():
            self.assertEqual(cls.code, code, cls.__name__)

    def test_to_reply(self) -> None:
        """to_reply() gives response, error and any extra keys."""
        error = errors.Conflict("already connected", session="x")
        self.assertEqual(error.to_reply(),
                         {"response": 409, "error": "already connected", "session": "x"})
        self.assertEqual(str(error), "already connected")
        self.assertEqual(repr(error), "Conflict(409, 'already connected')")

    def test_code_override(self) -> None:
        """An explicit code overrides the class code for that instance only."""
        error = errors.MessengerError("teapot", 418)
        self.assertEqual(error.code, 418)
        self.assertEqual(errors.MessengerError.code, 500)
        self.assertEqual(error.to_reply(), {"response": 418, "error": "teapot"})

    def test_too_many_requests(self) -> None:
        """TooManyRequests keeps retry_after and puts it, rounded to ms, in the reply."""
        error = errors.TooManyRequests("slow down", 1.23456)
        self.assertEqual(error.retry_after, 1.23456)
        self.assertEqual(error.to_reply(),
                         {"response": 429, "error": "slow down", "retry_after": 1.235})


class ErrorFromReplyTests(SynchronousTestCase):
    """error_from_reply(), used by clients."""

    def test_each_code_maps_to_its_class(self) -> None:
        """Every error code comes back as its own class with the server's message."""
        for cls in (errors.BadRequest, errors.NotAuthorised, errors.WrongCredentials,
                    errors.Forbidden, errors.NotFound, errors.Conflict, errors.Gone,
                    errors.ServerError):
            error = errors.error_from_reply({"response": cls.code, "error": "why",
                                             "id": "0" * 32, "time": 1})
            self.assertIs(type(error), cls)
            self.assertEqual(error.message, "why")
            self.assertEqual(error.extra, {})

    def test_round_trip(self) -> None:
        """to_reply() then error_from_reply() gives an equal error, extras included."""
        original = errors.NotFound("no such user", user_id="bob")
        again = errors.error_from_reply(original.to_reply())
        self.assertIs(type(again), errors.NotFound)
        self.assertEqual((again.code, again.message, again.extra),
                         (404, "no such user", {"user_id": "bob"}))

    def test_too_many_requests(self) -> None:
        """A 429 reply gives TooManyRequests with its retry_after, 1.0 when absent."""
        error = errors.error_from_reply({"response": 429, "error": "slow", "retry_after": 2.5})
        self.assertIs(type(error), errors.TooManyRequests)
        self.assertEqual(error.retry_after, 2.5)
        error = errors.error_from_reply({"response": 429, "error": "slow"})
        self.assertEqual(error.retry_after, 1.0)
        error = errors.error_from_reply({"response": 429, "error": "slow",
                                         "retry_after": "soon"})
        self.assertEqual(error.retry_after, 1.0)

    def test_service_unavailable(self) -> None:
        """A 503 reply gives ServiceUnavailable, with retry_after when the server sent one."""
        error = errors.error_from_reply({"response": 503, "error": "busy", "retry_after": 2})
        self.assertIs(type(error), errors.ServiceUnavailable)
        self.assertEqual(error.retry_after, 2.0)
        self.assertEqual(error.to_reply(),
                         {"response": 503, "error": "busy", "retry_after": 2.0})
        error = errors.error_from_reply({"response": 503, "error": "store down"})
        self.assertIsNone(error.retry_after)
        self.assertEqual(error.to_reply(), {"response": 503, "error": "store down"})

    def test_unknown_code(self) -> None:
        """A code without a class keeps its number in a plain MessengerError."""
        error = errors.error_from_reply({"response": 418, "error": "teapot"})
        self.assertIs(type(error), errors.MessengerError)
        self.assertEqual(error.code, 418)

    def test_missing_or_bad_fields(self) -> None:
        """A reply without a readable error or code still gives a usable error."""
        error = errors.error_from_reply({"response": 404})
        self.assertEqual(error.message, "error 404")
        error = errors.error_from_reply({"response": "404", "error": 5})
        self.assertIs(type(error), errors.MessengerError)
        self.assertEqual(error.code, 500)
        self.assertEqual(error.message, "error 404")

    def test_boolean_code(self) -> None:
        """A JSON true as the response code is not taken for the integer 1.

        Fails until error_from_reply checks type(code) is int (see the report).
        """
        error = errors.error_from_reply({"response": True, "error": "odd"})
        self.assertIs(type(error.code), int)
        self.assertEqual(error.code, 500)

    def test_reply_with_message_key(self) -> None:
        """A reply carrying an extra 'message' key still gives an error, not a TypeError.

        Fails until MessengerError's message/code are positional-only (see the report).
        """
        error = errors.error_from_reply({"response": 400, "error": "bad", "message": "hi"})
        self.assertIs(type(error), errors.BadRequest)
        self.assertEqual(error.message, "bad")
        error = errors.error_from_reply({"response": 429, "error": "slow", "message": "hi"})
        self.assertIs(type(error), errors.TooManyRequests)

    def test_reply_with_code_key(self) -> None:
        """An extra 'code' key in a reply cannot replace the error's JIM code.

        Fails until MessengerError's message/code are positional-only (see the report).
        """
        error = errors.error_from_reply({"response": 404, "error": "x", "code": "abc"})
        self.assertEqual(error.code, 404)
