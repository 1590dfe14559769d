"""The plain-text e-mail templates shipped in ``templates/*.txt``, and their rendering.

A template file is a ``Subject: ...`` line, a blank line, then the body. Fields are
``$name`` placeholders (`string.Template`): substitution never evaluates anything, and a
``$`` inside a value is left as it is. Values are made safe first: control characters
(newlines included) become spaces, so no value can add a header line or fake a paragraph,
and each value is cut to `MAX_FIELD` characters.

Times may be given as POSIX seconds or `datetime` and are written in UTC, e.g.
``2026-11-23 14:05 UTC``: the server does not know the reader's time zone, so it names one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from string import Template

TEMPLATE_NAMES = ("welcome", "new_location", "lockout")
FIELDS = frozenset({"account_name", "email", "address", "time", "unlock_time", "server_name"})
TIME_FIELDS = frozenset({"time", "unlock_time"})
MAX_FIELD = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TemplateError(ValueError):
    """A template is unknown, malformed, or was given missing or unknown fields."""


@dataclass(frozen=True)
class MailTemplate:
    name: str
    subject: Template
    body: Template

    @property
    def fields(self) -> frozenset[str]:
        """The field names this template uses."""
        return frozenset(self.subject.get_identifiers()) | frozenset(
            self.body.get_identifiers())

    def render(self, **fields: object) -> tuple[str, str]:
        """(subject, body) with `fields` substituted; TemplateError if any is missing."""
        unknown = set(fields) - FIELDS
        if unknown:
            raise TemplateError(f"unknown template fields: {', '.join(sorted(unknown))}")
        missing = self.fields - set(fields)
        if missing:
            raise TemplateError(
                f"template {self.name!r} needs: {', '.join(sorted(missing))}")
        values = {key: format_value(key, value) for key, value in fields.items()}
        return self.subject.substitute(values), self.body.substitute(values)


def format_time(value: float | datetime) -> str:
    """A moment as ``YYYY-MM-DD HH:MM UTC``; naive datetimes are taken as UTC."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(float(value), UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_value(key: str, value: object) -> str:
    """One field as safe single-line text."""
    if key in TIME_FIELDS and isinstance(value, int | float | datetime) \
            and not isinstance(value, bool):
        text = format_time(value)
    else:
        text = str(value)
    return _CONTROL.sub(" ", text)[:MAX_FIELD]


def parse_template(name: str, text: str) -> MailTemplate:
    """Split a template file into its subject line and body."""
    first, sep, rest = text.partition("\n")
    if not first.startswith("Subject: ") or not sep:
        raise TemplateError(f"template {name!r} must start with a 'Subject: ' line")
    blank, sep, body = rest.partition("\n")
    if blank.strip() or not sep:
        raise TemplateError(f"template {name!r} needs a blank line after the subject")
    return MailTemplate(name, Template(first[len("Subject: "):].strip()), Template(body))


@cache
def load_template(name: str) -> MailTemplate:
    """The shipped template `name` (one of `TEMPLATE_NAMES`)."""
    if name not in TEMPLATE_NAMES:
        raise TemplateError(f"no such mail template: {name!r}")
    resource = resources.files(__package__).joinpath("templates").joinpath(f"{name}.txt")
    return parse_template(name, resource.read_text(encoding="utf-8"))


def render(name: str, **fields: object) -> tuple[str, str]:
    """(subject, body) of template `name` with `fields` substituted."""
    return load_template(name).render(**fields)
