"""The JIM codec: JSON objects on the wire, and the validation of every request.

``encode`` and ``decode`` turn dicts into frame payloads and back. ``validate_request``
checks a decoded request against the schema of its action (``ACTIONS``) before any handler
sees it: types, lengths, ranges and the account-name charset. Anything wrong raises
`BadRequest` with a message that names the field, so the sender learns what to fix.

Unknown extra keys are ignored (a newer client may send more); missing or ill-typed known
keys are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from messenger.wire.errors import BadRequest
from messenger.wire.validators import (  # noqa: F401 - jim.text etc. are the schema language
    ACCOUNT_NAME_RE,
    Field,
    account_name,
    base64_text,
    boolean,
    check_fields,
    check_text,
    email,
    file_name,
    integer,
    label,
    mime_type,
    number,
    obj,
    one_of,
    optional,
    sha256_hex,
    string_list,
    text,
)

REQUEST_ID_RE = re.compile(r"[0-9a-f]{32}")
MAX_TEXT = 65536
# The largest JSON payload (before sealing) of any frame the server sends: every reply and
# push is cut to fit (paged replies by their encoded size), and clients refuse more.
MAX_SERVER_PAYLOAD = 1024 * 1024
STATUSES = ("online", "away")
# Files (docs/PROTOCOL.md, "Files"): ceilings of the schema; the server's configured limits
# (largest file, quota) apply on top.
MAX_FILE_SIZE = 2**53               # a size any JSON number holds exactly
THUMBNAIL_MAX = 16384               # base64 characters of an attachment's thumbnail (12 KiB)
IMAGE_SIDE_MAX = 65535
# Hard ceilings of group fields; the server's configured limits are at most these.
GROUP_NAME_MAX = 256
GROUP_TOPIC_MAX = 4096
GROUP_ROLES = ("owner", "admin", "member")
MAX_INITIAL_MEMBERS = 1000
SEARCH_QUERY_MAX = 256


# -- codec --------------------------------------------------------------------------------

def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# JSONEncoder.encode builds a C encoder on every call; build it once. (No circular
# reference check: JIM objects are trees.)
_c_encoder = (json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _encoder.default, json.encoder.c_encode_basestring,  # type: ignore[attr-defined]
    None, ":", ",", False, False, False) if json.encoder.c_make_encoder else None)


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialise one JIM object as compact UTF-8 JSON."""
    if _c_encoder is None:
        return _encoder.encode(message).encode("utf-8")
    return "".join(_c_encoder(message, 0)).encode("utf-8")


def decode(payload: bytes) -> dict[str, Any]:
    """Parse one frame payload into a JIM object, or raise `BadRequest`."""
    try:
        message = _decoder.decode(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("frame is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise BadRequest("frame is not valid JSON") from None
    if type(message) is not dict:
        raise BadRequest("a JIM message must be a JSON object")
    return message


# -- request schemas ----------------------------------------------------------------------

password = text(1, 1024)
new_password = text(8, 1024)
body = text(1, MAX_TEXT)  # the server applies its configured, smaller body limit on top
token = text(16, 128)
page_limit = integer(1, 1000)
message_id = integer(0)
file_id = integer(1)
image_side = integer(1, IMAGE_SIDE_MAX)
attachment = obj(
    Field("file_id", file_id),
    optional("name", file_name),
    optional("width", image_side),
    optional("height", image_side),
    optional("thumbnail", base64_text(THUMBNAIL_MAX)),
)
group_id = integer(1)
group_name = label(1, GROUP_NAME_MAX)
group_topic = label(0, GROUP_TOPIC_MAX, newlines=True)

ACTIONS: dict[str, tuple[Field, ...]] = {
    # Phase 3, before login
    "register": (
        Field("user", obj(Field("account_name", account_name), Field("password", new_password),
                          Field("email", email))),
        optional("premium_code", text(1, 64)),
        optional("remember", boolean),
    ),
    "authenticate": (
        Field("user", obj(Field("account_name", account_name), Field("password", password))),
        optional("remember", boolean),
    ),
    "resume": (
        Field("user", obj(Field("account_name", account_name))),
        Field("token", token),
    ),
    "quit": (),
    # after login
    "logout": (),
    "set_password": (Field("old_password", password), Field("new_password", new_password)),
    "presence": (Field("status", one_of(*STATUSES)),),
    "get_contacts": (optional("after", account_name), optional("limit", integer(1, 5000))),
    "add_contact": (Field("user_id", account_name),),
    "del_contact": (Field("user_id", account_name),),
    "block_user": (Field("user_id", account_name),),
    "unblock_user": (Field("user_id", account_name),),
    "get_blocked": (optional("after", account_name), optional("limit", integer(1, 1000))),
    "search_users": (
        Field("query", text(1, 32)),
        optional("offset", integer(0, 100000)),
        optional("limit", integer(1, 50)),
    ),
    "msg": (  # exactly one of "to" and "group" (see ONE_OF)
        optional("to", account_name),
        optional("group", group_id),
        optional("message", body),      # required, but "" or absent with an attachment
        optional("from", account_name),
        optional("attachment", attachment),
        optional("reply_to", integer(1)),
    ),
    "edit_msg": (Field("msg_id", integer(1)), Field("message", body)),
    "delete_msg": (Field("msg_id", integer(1)),),
    "sync_changes": (optional("since", message_id), optional("limit", integer(1, 500))),
    "search_messages": (  # at most one of "with" and "group" (see AT_MOST_ONE)
        Field("query", text(1, SEARCH_QUERY_MAX)),
        optional("with", account_name),
        optional("group", group_id),
        optional("offset", integer(0, 10000)),
        optional("limit", integer(1, 50)),
    ),
    "history": (  # exactly one of "with" and "group"
        optional("with", account_name),
        optional("group", group_id),
        optional("before", message_id),
        optional("limit", integer(1, 200)),
    ),
    "mark_read": (  # exactly one of "with" and "group"
        optional("with", account_name),
        optional("group", group_id),
        Field("up_to", message_id),
    ),
    "get_unread": (),
    # receipts and typing (issue 15): exactly one of "with"/"to" and "group"
    "receipt": (
        Field("kind", one_of("delivered", "read")),
        optional("with", account_name),
        optional("group", group_id),
        Field("up_to", integer(1)),
    ),
    "sync_receipts": (Field("since", message_id), optional("limit", integer(1, 1000))),
    "settings": (optional("read_receipts", boolean),),
    "typing": (optional("to", account_name), optional("group", group_id)),
    "group_create": (
        Field("name", group_name),
        optional("topic", group_topic),
        optional("members", string_list(account_name, MAX_INITIAL_MEMBERS)),
        optional("announce_only", boolean),
    ),
    "group_list": (optional("after", integer(0)), optional("limit", integer(1, 500))),
    "group_info": (
        Field("group", group_id),
        optional("after", account_name),
        optional("limit", integer(1, 1000)),
    ),
    "group_add": (Field("group", group_id), Field("user_id", account_name)),
    "group_remove": (Field("group", group_id), Field("user_id", account_name)),
    "group_leave": (Field("group", group_id),),
    "group_update": (  # at least one of name, topic, announce_only
        Field("group", group_id),
        optional("name", group_name),
        optional("topic", group_topic),
        optional("announce_only", boolean),
    ),
    "group_set_role": (
        Field("group", group_id),
        Field("user_id", account_name),
        Field("role", one_of(*GROUP_ROLES)),
    ),
    "group_delete": (Field("group", group_id),),
    "sync": (Field("since", message_id), optional("limit", integer(1, 1000))),
    "broadcast": (Field("message", body),),
    "get_broadcasts": (optional("before", message_id), optional("limit", integer(1, 100))),
    # files (docs/PROTOCOL.md, "Files"); the bytes travel in binary frames (wire.binary)
    "file_upload": (
        Field("name", file_name),
        Field("size", integer(0, MAX_FILE_SIZE)),
        Field("mime", mime_type),
        Field("sha256", sha256_hex),
    ),
    "file_finish": (Field("upload_id", file_id),),
    "file_cancel": (Field("upload_id", file_id),),
    "file_get": (Field("file_id", file_id),),
    "call_dial": (
        Field("user_id", account_name),
        optional("codecs", string_list(text(1, 16), 8)),
    ),
    "call_hangup": (optional("call_id", text(1, 64)), optional("user_id", account_name)),
    # admin (the server checks the role on every call)
    "admin_list_users": (
        optional("query", text(1, 32)),
        optional("offset", integer(0, 10**9)),
        optional("limit", integer(1, 200)),
    ),
    "admin_set_admin": (Field("user_id", account_name), Field("value", boolean)),
    "admin_set_premium": (Field("user_id", account_name), Field("value", boolean)),
    "admin_lock": (Field("user_id", account_name), optional("minutes", integer(1, 10**7))),
    "admin_unlock": (Field("user_id", account_name),),
    "admin_login_history": (
        Field("user_id", account_name),
        optional("before", message_id),
        optional("limit", integer(1, 200)),
    ),
    "admin_create_code": (),
    "admin_list_codes": (optional("offset", integer(0, 10**9)), optional("limit", integer(1, 200))),
    "admin_delete_user": (Field("user_id", account_name),),
    "admin_audit": (optional("before", message_id), optional("limit", integer(1, 200))),
    "admin_list_groups": (
        optional("query", text(1, 64)),
        optional("offset", integer(0, 10**9)),
        optional("limit", integer(1, 200)),
    ),
}

# Actions that name one conversation: exactly one of these keys (a person or a group).
ONE_OF: dict[str, tuple[str, str]] = {
    "msg": ("to", "group"),
    "history": ("with", "group"),
    "mark_read": ("with", "group"),
    "receipt": ("with", "group"),
    "typing": ("to", "group"),
}
# Actions that may name one conversation: at most one of these keys.
AT_MOST_ONE: dict[str, tuple[str, str]] = {
    "search_messages": ("with", "group"),
}
# Actions that change something optional: at least one of these keys.
ANY_OF: dict[str, tuple[str, ...]] = {
    "group_update": ("name", "topic", "announce_only"),
}


def _exactly_one(request: Mapping[str, Any], first: str, second: str) -> None:
    has_first, has_second = request.get(first) is not None, request.get(second) is not None
    if has_first == has_second:
        if has_first:
            raise BadRequest(f"give '{first}' or '{second}', not both")
        raise BadRequest(f"'{first}' (a person) or '{second}' (a group id) is required")


def _check_rules(action: str, request: Mapping[str, Any]) -> None:
    pair = ONE_OF.get(action)
    if pair is not None:
        _exactly_one(request, *pair)
    pair = AT_MOST_ONE.get(action)
    if pair is not None and all(request.get(key) is not None for key in pair):
        raise BadRequest(f"give '{pair[0]}' or '{pair[1]}', not both")
    keys = ANY_OF.get(action)
    if keys is not None and all(request.get(key) is None for key in keys):
        raise BadRequest(f"give at least one of {', '.join(repr(k) for k in keys)}")


def validate_envelope(request: dict[str, Any]) -> str:
    """Check the keys every request carries; return its action name."""
    action = request.get("action")
    if type(action) is not str:
        raise BadRequest("'action' is required and must be a string")
    request_id = request.get("id")
    if type(request_id) is not str or not REQUEST_ID_RE.fullmatch(request_id):
        if request_id is None:
            raise BadRequest("'id' is required: 32 lowercase hex digits (128 random bits)")
        raise BadRequest("'id' must be 32 lowercase hex digits (128 random bits)")
    stamp = request.get("time")
    if type(stamp) not in (int, float):
        raise BadRequest("'time' is required and must be a number")
    return action


_account_match = ACCOUNT_NAME_RE.fullmatch


def _validate_msg(request: Mapping[str, Any]) -> None:
    """The schema of ``msg``, unrolled: it runs for every message sent."""
    to = request.get("to")
    if type(to) is not str or _account_match(to) is None:
        if to is None:
            group = request.get("group")
            if type(group) is not int or not 0 < group < 2**63:
                if group is None:
                    raise BadRequest("'to' (a person) or 'group' (a group id) is required")
                group_id("group", group)
        else:
            account_name("to", to)
    elif request.get("group") is not None:
        raise BadRequest("give 'to' or 'group', not both")
    text_ = request.get("message")
    if type(text_) is not str or not 0 < len(text_) <= MAX_TEXT or not text_.isascii():
        _check_caption(request, text_)
    sender = request.get("from")
    if sender is not None:
        account_name("from", sender)
    quoted = request.get("reply_to")
    if quoted is not None and (type(quoted) is not int or not 0 < quoted < 2**63):
        integer(1)("reply_to", quoted)
    if request.get("attachment") is not None:
        attachment("attachment", request["attachment"])


def _check_caption(request: Mapping[str, Any], text_: Any) -> None:
    """The body of a message that is not short ASCII: with an attachment it may be empty
    or absent (a caption), without one it is 1 to MAX_TEXT characters."""
    if (text_ is None or text_ == "") and request.get("attachment") is not None:
        return
    if text_ is None:
        raise BadRequest("'message' is required")
    check_text("message", text_, 1, MAX_TEXT)


_FAST: dict[str, Callable[[Mapping[str, Any]], None]] = {"msg": _validate_msg}


def validate_request(action: str, request: Mapping[str, Any]) -> None:
    """Check the fields of a request whose action is known; raise `BadRequest` if wrong."""
    fast = _FAST.get(action)
    if fast is not None:
        fast(request)
    else:
        check_fields(request, ACTIONS[action])
        if action in ONE_OF or action in ANY_OF or action in AT_MOST_ONE:
            _check_rules(action, request)
