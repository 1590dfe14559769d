"""Tests for messenger.client.plan: what the next connection logs in with."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.client.plan import AUTHENTICATE, REGISTER, RESUME, LoginPlan


class LoginPlanTests(unittest.TestCase):
    def test_password_login_asks_for_a_token(self):
        """authenticate sends the name and password and asks to be remembered."""
        plan = LoginPlan(AUTHENTICATE, "alice", password="pw")
        self.assertEqual(plan.request(), ("authenticate", {
            "user": {"account_name": "alice", "password": "pw"}, "remember": True}))
        self.assertFalse(plan.resuming)

    def test_register_adds_the_email_and_a_premium_code(self):
        """register sends the e-mail, and the premium code only when there is one."""
        plan = LoginPlan(REGISTER, "alice", password="pw", email="a@b.org",
                         premium_code="CODE")
        action, fields = plan.request()
        self.assertEqual((action, fields["user"]["email"], fields["premium_code"]),
                         ("register", "a@b.org", "CODE"))
        _, fields = LoginPlan(REGISTER, "alice", password="pw", email="a@b.org").request()
        self.assertNotIn("premium_code", fields)

    def test_resume_sends_the_token_and_no_password(self):
        """A resume plan carries the token only."""
        action, fields = LoginPlan(RESUME, "alice", token="t").request()
        self.assertEqual((action, fields),
                         ("resume", {"user": {"account_name": "alice"}, "token": "t"}))

    def test_after_a_password_login_the_plan_is_a_resume(self):
        """resumed() keeps the account and remember, drops the password."""
        plan = LoginPlan(AUTHENTICATE, "Alice", password="pw", remember=False,
                         explicit=True)
        later = plan.resumed("alice", "tok")
        self.assertEqual((later.kind, later.account_name, later.token, later.password,
                          later.remember, later.explicit),
                         (RESUME, "alice", "tok", None, False, False))
        self.assertTrue(later.resuming)
