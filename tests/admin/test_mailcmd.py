"""Tests for messenger.admin.mailcmd: listing and showing the server's outgoing mail."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from messenger.admin.mailcmd import format_mail_table, list_mail, show_mail
from messenger.server.mail.compose import compose, to_text
from messenger.server.mail.delivery import MaildirDeliverer
from messenger.server.mail.spool import SpoolDirectory, SpoolEntry, new_mail_id

T0 = 1_800_000_000.0     # 2027-01-15 08:00:00 UTC


def sync_io(function, *args):
    return defer.maybeDeferred(function, *args)


def make_entry(to: str, subject: str, created: float, body: str = "Body text.\n",
               **changes) -> SpoolEntry:
    mail_id = new_mail_id()
    message = compose(sender="Messenger <noreply@example.org>", to=to, subject=subject,
                      body=body, date=created, mail_id=mail_id)
    entry = SpoolEntry(mail_id=mail_id, created=created, sender="noreply@example.org", to=to,
                       subject=subject, message=to_text(message), next_attempt=created)
    for name, value in changes.items():
        setattr(entry, name, value)
    return entry


class MailListTests(SynchronousTestCase):
    """list_mail, format_mail_table and show_mail on a data directory."""

    def setUp(self) -> None:
        self.data_dir = Path(self.mktemp())
        self.spool = SpoolDirectory(self.data_dir / "mail-spool")
        self.maildir = MaildirDeliverer(self.data_dir / "Maildir", run_io=sync_io,
                                        hostname="host")

    def populate(self) -> dict[str, SpoolEntry]:
        delivered = make_entry("alice@example.org", "Welcome to Messenger, alice", T0)
        read = make_entry("bob@example.org", "Welcome to Messenger, bob", T0 + 10)
        pending = make_entry("carol@example.org", "Your account is locked", T0 + 20,
                             attempts=3, next_attempt=T0 + 100,
                             last_error="relay unavailable: Connection refused")
        failed = make_entry("nobody@example.org", "Welcome to Messenger, nobody", T0 + 30,
                            attempts=1, failed_at=T0 + 31,
                            last_error="relay refused recipient nobody@example.org: 550 no")
        for entry in (delivered, read):
            self.successResultOf(self.maildir.deliver(entry))
        new_dir = self.data_dir / "Maildir" / "new"
        (name,) = [n for n in os.listdir(new_dir) if read.mail_id in n]
        os.rename(new_dir / name, self.data_dir / "Maildir" / "cur" / (name + ":2,S"))
        self.spool.write(pending.mail_id, pending.to_json())
        self.spool.write(failed.mail_id, failed.to_json())
        self.spool.fail(failed.mail_id, failed.to_json())
        return {"new": delivered, "read": read, "pending": pending, "failed": failed}

    def test_empty_data_dir(self) -> None:
        """A data dir without spool or Maildir lists nothing and says so."""
        self.assertEqual(list_mail(self.data_dir), [])
        self.assertEqual(format_mail_table([]), "No mail in the spool or the Maildir.")

    def test_lists_every_state(self) -> None:
        """Maildir new and cur, pending and failed mails are listed, oldest first."""
        entries = self.populate()
        rows = list_mail(self.data_dir)
        self.assertEqual([row["state"] for row in rows], ["new", "read", "pending", "failed"])
        for row in rows:
            entry = entries[row["state"]]
            self.assertEqual(row["key"], entry.mail_id)
            self.assertEqual(row["to"], entry.to)
            self.assertEqual(row["subject"], entry.subject)

    def test_maildir_rows(self) -> None:
        """Maildir rows take date, recipient and subject from the message headers."""
        self.populate()
        new = list_mail(self.data_dir)[0]
        self.assertEqual(new["date"], T0)
        self.assertIsNone(new["attempts"])
        self.assertTrue(new["path"].endswith(".host"))

    def test_pending_row(self) -> None:
        """A pending row carries attempts, the next attempt and the last error."""
        self.populate()
        (pending,) = [row for row in list_mail(self.data_dir) if row["state"] == "pending"]
        self.assertEqual(pending["attempts"], 3)
        self.assertEqual(pending["next_attempt"], T0 + 100)
        self.assertEqual(pending["last_error"], "relay unavailable: Connection refused")

    def test_failed_row(self) -> None:
        """A failed row is dated when it failed and carries the error."""
        self.populate()
        (failed,) = [row for row in list_mail(self.data_dir) if row["state"] == "failed"]
        self.assertEqual(failed["date"], T0 + 31)
        self.assertIn("550 no", failed["last_error"])
        self.assertIsNone(failed["next_attempt"])

    def test_unreadable_file_listed(self) -> None:
        """A spool file that is not an entry is listed as unreadable, not an error."""
        self.spool.ensure()
        (self.spool.path / "broken.json").write_bytes(b"\x80garbage")
        (row,) = list_mail(self.data_dir)
        self.assertEqual(row["state"], "unreadable")
        self.assertEqual(row["key"], "broken")

    def test_foreign_maildir_file(self) -> None:
        """A Maildir file we did not write is listed under its file name."""
        new_dir = self.data_dir / "Maildir" / "new"
        new_dir.mkdir(parents=True)
        (new_dir / "123.abc.other").write_bytes(
            b"To: x@example.org\nSubject: Hand made\nDate: Fri, 15 Jan 2027 08:00:00 +0000\n"
            b"\nhi\n")
        (new_dir / "456.def.nodate").write_bytes(b"Subject: No date\n\nhi\n")
        rows = {row["key"]: row for row in list_mail(self.data_dir)}
        self.assertEqual(sorted(rows), ["123.abc.other", "456.def.nodate"])
        self.assertEqual(rows["123.abc.other"]["subject"], "Hand made")
        self.assertEqual(rows["123.abc.other"]["date"], T0)
        self.assertEqual(rows["456.def.nodate"]["date"],
                         (new_dir / "456.def.nodate").stat().st_mtime)

    def test_table(self) -> None:
        """The table has a header, one line per mail with its state, and a summary."""
        entries = self.populate()
        table = format_mail_table(list_mail(self.data_dir))
        lines = table.splitlines()
        self.assertTrue(lines[0].startswith("KEY"))
        for word in ("STATE", "DATE (UTC)", "TO", "SUBJECT", "ATTEMPTS / ERROR"):
            self.assertIn(word, lines[0])
        self.assertEqual(len(lines), 1 + 4 + 2)
        self.assertIn(entries["pending"].mail_id[:12], lines[3])
        self.assertIn("pending", lines[3])
        self.assertIn("3 failed attempt(s), next 2027-01-15 08:01:40", lines[3])
        self.assertIn("relay unavailable", lines[3])
        self.assertIn("2027-01-15 08:00", lines[1])
        self.assertEqual(lines[-1], "4 mail(s): 1 failed, 1 new, 1 pending, 1 read")

    def test_table_cuts_long_cells(self) -> None:
        """Long subjects and errors are cut so a row stays readable."""
        entry = make_entry("carol@example.org", "S" * 300, T0, last_error="E" * 500,
                           attempts=1)
        self.spool.write(entry.mail_id, entry.to_json())
        line = format_mail_table(list_mail(self.data_dir)).splitlines()[1]
        self.assertIn("S" * 33 + "...", line)
        self.assertNotIn("S" * 34, line)
        self.assertIn("E" * 50, line)
        self.assertLess(len(line), 220)

    def test_show_pending(self) -> None:
        """show_mail prints the state, the error and the whole message of a pending mail."""
        entries = self.populate()
        pending = entries["pending"]
        text = show_mail(self.data_dir, pending.mail_id[:8])
        self.assertIn(f"Key:      {pending.mail_id}", text)
        self.assertIn("State:    pending", text)
        self.assertIn("Attempts: 3 failed", text)
        self.assertIn("Next:     2027-01-15 08:01:40 UTC", text)
        self.assertIn("Error:    relay unavailable: Connection refused", text)
        self.assertIn("Subject: Your account is locked", text)
        self.assertIn("Body text.", text)

    def test_show_maildir(self) -> None:
        """show_mail prints a Maildir mail with its delivery headers."""
        entries = self.populate()
        text = show_mail(self.data_dir, entries["read"].mail_id)
        self.assertIn("State:    read", text)
        self.assertIn("Delivered-To: bob@example.org", text)
        self.assertIn("Body text.", text)

    def test_show_unknown_and_ambiguous(self) -> None:
        """An unknown key is a LookupError; an empty or ambiguous one a ValueError."""
        self.populate()
        for mail_id in ("abcd" + "0" * 28, "abcd" + "1" * 28):
            entry = make_entry("dave@example.org", "Twin", T0, mail_id=mail_id)
            self.spool.write(entry.mail_id, entry.to_json())
        self.assertRaises(LookupError, show_mail, self.data_dir, "zzz")
        self.assertRaises(ValueError, show_mail, self.data_dir, "  ")
        error = self.assertRaises(ValueError, show_mail, self.data_dir, "abcd")
        self.assertIn("matches 2 mails", str(error))
        self.assertIn("Subject: Twin", show_mail(self.data_dir, "abcd1"))

    def test_reads_without_writing(self) -> None:
        """Listing and showing change nothing on disk."""
        entries = self.populate()

        def snapshot() -> dict[str, float]:
            return {str(path): path.stat().st_mtime for path in self.data_dir.rglob("*")}

        before = snapshot()
        list_mail(self.data_dir)
        show_mail(self.data_dir, entries["failed"].mail_id)
        self.assertEqual(snapshot(), before)
