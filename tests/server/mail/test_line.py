"""The line of due mails waiting for a delivery slot (the Mailer's use of it is shown in
tests/server/mail/test_mailer.py against a real SMTP relay)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.server.mail.line import DeliveryLine


class DeliveryLineTests(SynchronousTestCase):

    def test_security_mails_first_and_a_slot_kept_for_them(self) -> None:
        """With 3 of 4 slots busy only a security mail may start; ordinary ones wait in
        order; a mail is queued once; a removed one never comes out."""
        line = DeliveryLine(4)
        self.assertEqual((line.slots(True), line.slots(False)), (4, 3))
        for mail_id, urgent in (("a", False), ("b", False), ("a", False), ("x", True),
                                ("c", False)):
            line.wait(mail_id, urgent)
        self.assertEqual(len(line), 4)
        line.remove("b")
        self.assertNotIn("b", line)
        self.assertEqual(line.next(3), "x")
        self.assertIsNone(line.next(3))
        self.assertEqual([line.next(0), line.next(0), line.next(0)], ["a", "c", None])
        self.assertEqual(len(line), 0)

    def test_one_slot_is_never_zero(self) -> None:
        """With a single slot ordinary mail still goes (nothing is starved)."""
        line = DeliveryLine(1)
        line.wait("a", False)
        self.assertEqual(line.next(0), "a")
