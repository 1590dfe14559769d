"""Build the RFC 5322 messages the server sends.

One function, `compose`, turns (sender, recipient, subject, body, date, message id) into an
`email.message.EmailMessage`: plain text, UTF-8, with From, To, Subject, Date, Message-ID
and ``Auto-Submitted: auto-generated`` (RFC 3834, so vacation responders stay quiet).
The result is serialised with ``\\n`` line ends (`to_text`); the SMTP client turns them into
CRLF and a Maildir keeps them as they are.

Addresses are checked here, before anything is queued: a bad address is the caller's
error and must never become a mail that waits in the spool for days.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

# A conservative addr-spec: dot-atom local part, host name (or "localhost"-style) domain.
# Quoted local parts and address literals are legal but never needed for our users.
_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
MAX_ADDRESS = 254            # RFC 5321 path limit, minus the angle brackets
_POLICY = policy.default     # "\n" line ends, RFC 2047 words for non-ASCII headers
_MAX_7BIT_LINE = 78


def check_address(address: str) -> str:
    """Return `address` if it is a plain ASCII addr-spec (``user@host``), else ValueError."""
    if not isinstance(address, str):
        raise ValueError("an e-mail address must be a string")
    if len(address) > MAX_ADDRESS or not _ADDR_SPEC.fullmatch(address):
        raise ValueError(f"not a usable e-mail address: {address[:80]!r}")
    return address


def split_sender(from_address: str) -> tuple[str, str]:
    """Split a From setting (``Name <user@host>`` or ``user@host``) into (name, addr-spec)."""
    if any(ch in from_address for ch in "\r\n"):
        raise ValueError("the from address must be one line")
    name, addr = parseaddr(from_address)
    return name, check_address(addr)


def message_id(mail_id: str, sender: str) -> str:
    """The Message-ID of the mail with spool id `mail_id`: stable across every retry."""
    domain = sender.rpartition("@")[2]
    return f"<{mail_id}@{domain}>"


def compose(*, sender: str, to: str, subject: str, body: str, date: float,
            mail_id: str) -> EmailMessage:
    """A plain-text UTF-8 message from `sender` (a From setting) to `to` (an addr-spec).

    `date` is POSIX seconds (from the injected clock); `mail_id` gives the Message-ID.
    Raises ValueError for a bad address or a subject that is not one line.
    """
    name, addr = split_sender(sender)
    check_address(to)
    if any(ch in subject for ch in "\r\n"):
        raise ValueError("a subject must be one line")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = Address(display_name=name, addr_spec=addr) if name else addr
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(date, UTC))
    msg["Message-ID"] = message_id(mail_id, addr)
    msg["Auto-Submitted"] = "auto-generated"
    if not body.endswith("\n"):
        body += "\n"
    seven_bit = body.isascii() and all(
        len(line) <= _MAX_7BIT_LINE for line in body.splitlines())
    msg.set_content(body, charset="utf-8",
                    cte="7bit" if seven_bit else "quoted-printable")
    return msg


def to_text(msg: EmailMessage) -> str:
    """The message as text with ``\\n`` line ends; ASCII only (headers and body encoded)."""
    return msg.as_bytes(policy=_POLICY).decode("ascii")
