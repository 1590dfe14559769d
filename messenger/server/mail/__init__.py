"""Outgoing e-mail: a durable spool, SMTP or Maildir delivery, and the mail templates.

- `compose`: builds the RFC 5322 message (plain text, UTF-8).
- `templates`: loads ``templates/*.txt`` and fills in their fields safely.
- `spool`: one JSON file per queued mail, written atomically; survives restarts.
- `delivery`: the SMTP relay deliverer (twisted.mail.smtp) and the Maildir deliverer.
- `mailer`: the `Mailer` service that queues, delivers and retries with back-off.

See docs/OPERATIONS.md ("E-mail") for configuration and inspection.
"""
