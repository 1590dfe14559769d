"""The field validators JIM's request schemas are written with (`jim.ACTIONS`).

Each validator takes (field name, value) and raises `BadRequest` naming the field when
the value is wrong: types, lengths, ranges, character sets. `obj` and `Field` nest them
for JSON objects; `check_fields` applies a tuple of fields to a message.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

from messenger.wire.errors import BadRequest

Validator = Callable[[str, Any], None]

SHA256_RE = re.compile(r"[0-9a-f]{64}")
ACCOUNT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,31}")
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f\ud800-\udfff]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
_MIME_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MIME_RE = re.compile(f"{_MIME_PART}/{_MIME_PART}")
FILE_NAME_MAX = 255
_FILE_NAME_BAD = re.compile(r"[\x00-\x1f\x7f/\\]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINE_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def check_text(name: str, value: Any, min_len: int, max_len: int) -> None:
    if type(value) is not str:
        raise BadRequest(f"'{name}' must be a string")
    if not min_len <= len(value) <= max_len:
        raise BadRequest(f"'{name}' must be {min_len} to {max_len} characters long")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"'{name}' is not valid Unicode text") from None


def text(min_len: int = 1, max_len: int = 1024) -> Validator:
    """A string of ``min_len`` to ``max_len`` characters of valid Unicode."""
    def check(name: str, value: Any) -> None:
        check_text(name, value, min_len, max_len)
    return check


def label(min_len: int, max_len: int, newlines: bool = False) -> Validator:
    """Text a person reads (a group's name, a topic): like `text`, without control
    characters (``newlines`` allows line feeds), and not only white space."""
    control = _CONTROL_BUT_NEWLINE_RE if newlines else _CONTROL_RE

    def check(name: str, value: Any) -> None:
        check_text(name, value, min_len, max_len)
        if control.search(value):
            raise BadRequest(f"'{name}' must not hold control characters")
        if value and not value.strip():
            raise BadRequest(f"'{name}' must not be only white space")
    return check


def account_name(name: str, value: Any) -> None:
    """3 to 32 characters: ASCII letters, digits, '_', '.', '-', starting alphanumeric."""
    if type(value) is not str:
        raise BadRequest(f"'{name}' must be a string")
    if not ACCOUNT_NAME_RE.fullmatch(value):
        raise BadRequest(
            f"'{name}' must be 3 to 32 characters: letters, digits, '_', '.' or '-',"
            " starting with a letter or digit")


def email(name: str, value: Any) -> None:
    if type(value) is not str:
        raise BadRequest(f"'{name}' must be a string")
    if len(value) > 254 or not EMAIL_RE.fullmatch(value):
        raise BadRequest(f"'{name}' must be an e-mail address")


def integer(minimum: int = 0, maximum: int = 2**63 - 1) -> Validator:
    """A JSON integer (not a boolean, not a float) within [minimum, maximum]."""
    def check(name: str, value: Any) -> None:
        if type(value) is not int:
            raise BadRequest(f"'{name}' must be an integer")
        if not minimum <= value <= maximum:
            raise BadRequest(f"'{name}' must be between {minimum} and {maximum}")
    return check


def number(name: str, value: Any) -> None:
    if type(value) not in (int, float):
        raise BadRequest(f"'{name}' must be a number")


def boolean(name: str, value: Any) -> None:
    if type(value) is not bool:
        raise BadRequest(f"'{name}' must be true or false")


def one_of(*choices: str) -> Validator:
    def check(name: str, value: Any) -> None:
        if value not in choices or type(value) is not str:
            raise BadRequest(f"'{name}' must be one of: {', '.join(choices)}")
    return check


def sha256_hex(name: str, value: Any) -> None:
    """A SHA-256 digest as 64 lowercase hex digits."""
    if type(value) is not str or not SHA256_RE.fullmatch(value):
        raise BadRequest(f"'{name}' must be a SHA-256 digest: 64 lowercase hex digits")


def mime_type(name: str, value: Any) -> None:
    """A MIME type ``type/subtype`` (RFC 6838 characters, no parameters)."""
    if type(value) is not str or not MIME_RE.fullmatch(value):
        raise BadRequest(f"'{name}' must be a MIME type such as 'image/png'")


def file_name(name: str, value: Any) -> None:
    """A file's name as people see it: 1 to 255 characters, no control characters, no
    '/' or '\\' (it names a file, not a path; the server never uses it as a path)."""
    check_text(name, value, 1, FILE_NAME_MAX)
    if _FILE_NAME_BAD.search(value):
        raise BadRequest(f"'{name}' must be a file name without control characters, '/'"
                         " or '\\'")
    if not value.strip() or value.strip(".") == "":
        raise BadRequest(f"'{name}' must be a file name, not only dots or white space")


def base64_text(max_len: int) -> Validator:
    """Standard padded base64 of at most ``max_len`` characters."""
    def check(name: str, value: Any) -> None:
        if type(value) is not str or not 0 < len(value) <= max_len or not value.isascii():
            raise BadRequest(f"'{name}' must be base64 of at most {max_len} characters")
        try:
            binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"'{name}' must be standard padded base64") from None
    return check


def string_list(item: Validator, max_items: int) -> Validator:
    def check(name: str, value: Any) -> None:
        if type(value) is not list:
            raise BadRequest(f"'{name}' must be a list")
        if len(value) > max_items:
            raise BadRequest(f"'{name}' may hold at most {max_items} items")
        for position, element in enumerate(value):
            item(f"{name}[{position}]", element)
    return check


class Field:
    """One key of a schema: its validator and whether it must be present."""

    __slots__ = ("name", "check", "required")

    def __init__(self, name: str, check: Validator, required: bool = True) -> None:
        self.name = name
        self.check = check
        self.required = required


def optional(name: str, check: Validator) -> Field:
    """A key that may be absent or null; when present it must pass ``check``."""
    return Field(name, check, required=False)


def obj(*fields: Field) -> Validator:
    """A nested JSON object with the given fields."""
    def check(name: str, value: Any) -> None:
        if type(value) is not dict:
            raise BadRequest(f"'{name}' must be an object")
        check_fields(value, fields, prefix=f"{name}.")
    return check


def check_fields(message: Mapping[str, Any], fields: tuple[Field, ...], prefix: str = "") -> None:
    for field in fields:
        value = message.get(field.name)
        if value is None:
            if field.required:
                raise BadRequest(f"'{prefix}{field.name}' is required")
            continue
        field.check(prefix + field.name, value)
