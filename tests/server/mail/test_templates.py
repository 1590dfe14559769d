"""Tests for messenger.server.mail.templates: the shipped texts and safe rendering."""

from __future__ import annotations

import ast
import glob
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import messenger.server
from messenger.server.mail import templates
from messenger.server.mail.templates import (
    FIELDS,
    MAX_FIELD,
    TEMPLATE_NAMES,
    TemplateError,
    format_time,
    load_template,
    parse_template,
    render,
)

T0 = 1_800_000_000.0     # 2027-01-15 08:00:00 UTC
ALL = dict(account_name="alice", email="alice@example.org", address="203.0.113.5",
           time=T0, unlock_time=T0 + 900, server_name="Messenger")
ROOT = Path(__file__).resolve().parents[3]


class ShippedTemplateTests(SynchronousTestCase):
    """The three template files in the package."""

    def test_all_load(self) -> None:
        """welcome, new_location and lockout load through importlib.resources."""
        for name in TEMPLATE_NAMES:
            template = load_template(name)
            self.assertEqual(template.name, name)
            self.assertTrue(template.fields <= FIELDS, template.fields - FIELDS)

    def test_fields_used(self) -> None:
        """Each template uses the fields its message needs."""
        self.assertEqual(load_template("welcome").fields,
                         {"account_name", "email", "address", "time", "server_name"})
        self.assertEqual(load_template("new_location").fields,
                         {"account_name", "address", "time", "server_name"})
        self.assertEqual(load_template("lockout").fields,
                         {"account_name", "address", "time", "unlock_time", "server_name"})

    def test_subject_lines(self) -> None:
        """The subjects name the server and the fact, in one line each."""
        self.assertEqual(render("welcome", **ALL)[0], "Welcome to Messenger, alice")
        self.assertEqual(render("new_location", **ALL)[0],
                         "New login to your Messenger account from 203.0.113.5")
        self.assertEqual(render("lockout", **ALL)[0],
                         "Your Messenger account is locked until 2027-01-15 08:15 UTC")

    def test_new_location_says_when_where_what(self) -> None:
        """The new-location mail gives time and address and tells what to do if not you."""
        body = render("new_location", **ALL)[1]
        self.assertIn("When:  2027-01-15 08:00 UTC", body)
        self.assertIn("From:  203.0.113.5", body)
        self.assertIn("If this was not you", body)
        self.assertIn("lock the\n   account", body)

    def test_lockout_says_until_when(self) -> None:
        """The lockout mail says when it happened, from where, and when it lifts."""
        body = render("lockout", **ALL)[1]
        self.assertIn("was locked at 2027-01-15 08:00 UTC", body)
        self.assertIn("came from 203.0.113.5", body)
        self.assertIn("lifts by itself at 2027-01-15 08:15 UTC", body)

    def test_no_placeholders_left(self) -> None:
        """A rendered mail contains no '$' placeholders and only short lines."""
        for name in TEMPLATE_NAMES:
            subject, body = render(name, **ALL)
            self.assertNotIn("$", subject + body)
            self.assertLessEqual(max(len(line) for line in body.splitlines()), 78, name)

    def test_setup_ships_templates(self) -> None:
        """setup.py's package_data pattern matches every template file."""
        tree = ast.parse((ROOT / "setup.py").read_text())
        package_data = next(
            node.value for node in ast.walk(tree)
            if isinstance(node, ast.keyword) and node.arg == "package_data")
        patterns = ast.literal_eval(package_data)["messenger.server"]
        base = Path(messenger.server.__file__).parent
        shipped = {Path(path).stem for pattern in patterns
                   for path in glob.glob(str(base / pattern))}
        self.assertEqual(shipped, set(TEMPLATE_NAMES))


class RenderTests(SynchronousTestCase):
    """Rendering: fields checked, values made safe."""

    def test_missing_field(self) -> None:
        """A field the template uses but that was not given is an error naming it."""
        fields = dict(ALL)
        del fields["unlock_time"]
        error = self.assertRaises(TemplateError, render, "lockout", **fields)
        self.assertIn("unlock_time", str(error))

    def test_unknown_field(self) -> None:
        """A misspelt field name is an error, not silently ignored."""
        error = self.assertRaises(TemplateError, render, "welcome", unlock="x", **ALL)
        self.assertIn("unlock", str(error))

    def test_unknown_template(self) -> None:
        """An unknown template name (or a path) is an error."""
        self.assertRaises(TemplateError, load_template, "nope")
        self.assertRaises(TemplateError, load_template, "../config")

    def test_newline_in_value_cannot_add_lines(self) -> None:
        """Control characters in a value become spaces: no forged header or paragraph."""
        subject, body = render("new_location", **{**ALL, "address": "1.2.3.4\nBcc: x@y.z"})
        self.assertEqual(subject, "New login to your Messenger account from 1.2.3.4 Bcc: x@y.z")
        self.assertIn("From:  1.2.3.4 Bcc: x@y.z\n", body)

    def test_dollar_in_value_kept_literally(self) -> None:
        """A '$' in a value is not substituted again."""
        subject, _ = render("welcome", **{**ALL, "account_name": "$address ${email}"})
        self.assertEqual(subject, "Welcome to Messenger, $address ${email}")

    def test_value_length_capped(self) -> None:
        """Very long values are cut to MAX_FIELD characters."""
        subject, _ = render("welcome", **{**ALL, "account_name": "a" * 5000})
        self.assertEqual(subject, "Welcome to Messenger, " + "a" * MAX_FIELD)

    def test_times(self) -> None:
        """Times may be POSIX seconds, aware or naive datetimes, or ready-made text."""
        self.assertEqual(format_time(T0), "2027-01-15 08:00 UTC")
        cet = timezone(timedelta(hours=1))
        self.assertEqual(format_time(datetime(2027, 1, 15, 9, 0, tzinfo=cet)),
                         "2027-01-15 08:00 UTC")
        self.assertEqual(format_time(datetime(2027, 1, 15, 8, 0)), "2027-01-15 08:00 UTC")
        self.assertEqual(format_time(datetime(2027, 1, 15, 8, 0, tzinfo=UTC)),
                         "2027-01-15 08:00 UTC")
        _, body = render("lockout", **{**ALL, "unlock_time": "tomorrow morning"})
        self.assertIn("lifts by itself at tomorrow morning.", body)

    def test_parse_requires_subject_and_blank_line(self) -> None:
        """A template file must start with 'Subject: ' and a blank line."""
        self.assertRaises(TemplateError, parse_template, "x", "Hello\n\nbody")
        self.assertRaises(TemplateError, parse_template, "x", "Subject: Hi\nbody")
        template = parse_template("x", "Subject: Hi $account_name\n\nBody $email\n")
        self.assertEqual(template.render(account_name="a", email="e"), ("Hi a", "Body e\n"))

    def test_templates_cached(self) -> None:
        """A template file is read once per process."""
        self.assertIs(load_template("welcome"), load_template("welcome"))
        self.assertIs(templates.load_template, load_template)
