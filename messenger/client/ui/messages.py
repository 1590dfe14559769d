"""Every sentence the desktop client shows about a failure or a state, in one place.

The windows never show an exception or a traceback: they pass what went wrong to
`explain` (a login, an action, a call) or `describe_state` (the status bar) and show the
sentence they get, which says what happened and, where the user can do something, what
to do. Times and durations for people are formatted here too. No Qt here.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from messenger.client import errors
from messenger.client.calls import controller as calls
from messenger.client.events import ConnectionState, State
from messenger.client.failures import describe
from messenger.client.tls import TlsSettingsError
from messenger.client.ui.settings import SettingsProblem

SETTINGS_HINT = "Server settings"


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _where(address: str) -> str:
    return f" at {address}" if address else ""


# -- failures -----------------------------------------------------------------------------

def explain(error: BaseException | Any, address: str = "") -> str:
    """One or two sentences about ``error`` (an exception or a Failure) for a person:
    what happened, and what to do about it. ``address`` is the server's "host:port"."""
    error = getattr(error, "value", error)        # a Failure
    if isinstance(error, SettingsProblem):
        return str(error)
    if isinstance(error, errors.ServerKeyChanged):
        return (f"Server key changed: the server{_where(error.address)} now presents the key"
                f" {_short(error.presented)}, but {_short(error.pinned)} was remembered for"
                " it. Someone may be intercepting the connection. If your administrator"
                " replaced the server's key on purpose, compare the fingerprint with"
                f" theirs, then tick \"Trust the server's new key\" in {SETTINGS_HINT}.")
    if isinstance(error, errors.HandshakeFailed):
        return _explain_handshake(error, address)
    if isinstance(error, errors.TlsRefused):
        return (_sentence(f"Secure connection refused: {_lower_first(error.message)}")
                + f" Check the TLS options in {SETTINGS_HINT}, or ask your administrator"
                " for the server's certificate.")
    if isinstance(error, (TlsSettingsError, errors.TlsSettingsInvalid)):
        return _sentence(f"The TLS settings cannot be used: {error}") + (
            f" Fix them in {SETTINGS_HINT}.")
    if isinstance(error, errors.NoSavedLogin):
        return "Log in with your password."
    if isinstance(error, errors.PasswordNeeded):
        return _sentence(f"Your saved login is no longer valid ({_strip(error.message)})")\
            + " Log in with your password."
    if isinstance(error, errors.NotConnected):
        return "Not connected to the server right now. Wait until the status bar says" \
               " online, then try again."
    if isinstance(error, errors.ServerUnreachable):
        return _explain_unreachable(error, address)
    if isinstance(error, (errors.ConnectionFailed, errors.ConfigDirUnusable)):
        return _sentence(f"The connection to the server{_where(address)} failed:"
                         f" {_strip(error.message)}") + " Check your network and try again."
    if isinstance(error, errors.MessengerError):
        return _explain_refusal(error)
    return _sentence(f"Something went wrong: {describe(error)}")


def _explain_handshake(error: errors.HandshakeFailed, address: str) -> str:
    if isinstance(error, errors.HmacError):
        return ("Server rejected the connection: hmac error. The shared secret does not"
                " match this server's: choose the secret file your administrator gave you"
                f" in {SETTINGS_HINT}.")
    if isinstance(error, errors.TooManyConnections):
        return (f"The server{_where(address)} has too many connections from your address"
                " right now. Wait a minute and try again.")
    if isinstance(error, errors.ServerNotAuthentic):
        return ("The server failed the shared-secret check: it does not know this secret."
                " It may not be your Messenger server; check the address and the secret"
                f" file in {SETTINGS_HINT}.")
    if isinstance(error, errors.WrongProtocol):
        return (f"The program{_where(address)} does not speak the Messenger protocol."
                f" Check the server address and port in {SETTINGS_HINT}.")
    return _sentence(f"The secure connection could not be set up: "
                     f"{_lower_first(error.message)}") + \
        f" Check the server address in {SETTINGS_HINT}, or ask your administrator."


# A refusal whose sentence does not depend on the server's words, by class.
_REFUSALS: tuple[tuple[type[errors.MessengerError], str], ...] = (
    (errors.WrongPassword, "Wrong password. Type your current password again."),
    (errors.WrongCredentials, "Wrong password or account name. Check both (names are not"
                              " case sensitive) and try again."),
    (errors.AlreadyConnected, "This account is already connected from somewhere else."
                              " Close Messenger there, or wait a minute if it crashed, then"
                              " try again."),
    (errors.NameTaken, "That account name is already taken. Choose another one."),
    (errors.EmailTaken, "That e-mail address already has an account. Log in to it instead,"
                        " or use another address."),
    (errors.AdminsOnly, "Only administrators can do that."),
    (errors.PremiumOnly, "Only premium accounts can post to everyone. Ask an administrator"
                         " for a premium code."),
    (errors.InvalidPremiumCode, "That premium code is not valid or was already used."
                                " Correct it, or leave the field empty to register without"
                                " one."),
    (errors.ServerError, "The server had a problem with that request. Try again in a"
                         " moment."),
    (errors.ServiceUnavailable, "The server had a problem with that request. Try again in"
                                " a moment."),
)


def _explain_refusal(error: errors.MessengerError) -> str:
    for cls, sentence in _REFUSALS:
        if isinstance(error, cls):
            return sentence
    text = _strip(error.message)
    if isinstance(error, errors.BlockedByUser):
        return text.replace("'", "", 2) + ". Nothing was delivered."   # a name: as is
    if isinstance(error, errors.AccountLocked):
        until = error.locked_until
        if until is not None:
            return (f"Account locked until {format_clock(until)} after too many failed"
                    " logins. Try again then, or ask an administrator to unlock it.")
        return "This account was locked by an administrator. Ask an administrator to" \
               " unlock it."
    if isinstance(error, errors.TooManyRequests):
        retry = error.retry_after
        wait = f" in {max(1, round(retry))} s" if isinstance(retry, (int, float)) else \
            " in a moment"
        return f"Too many attempts. Try again{wait}."
    if isinstance(error, errors.NotAuthorised):
        return _sentence(text) + " Log in with your password."
    if isinstance(error, errors.Gone):
        return _sentence(text) + " Try again when they are online."
    return _sentence(text)


def _explain_unreachable(error: errors.ServerUnreachable, address: str) -> str:
    if isinstance(error, errors.ConnectionRefused):
        return (f"Cannot reach the server{_where(address)}: nothing is listening there."
                " The server may be down, or the address or port is wrong; check it in"
                f" {SETTINGS_HINT}.")
    if isinstance(error, errors.HostNotFound):
        return (f"The server name{_where(address)} could not be found. Check the address in"
                f" {SETTINGS_HINT}.")
    if isinstance(error, errors.ConnectTimedOut):
        return (f"The server{_where(address)} did not answer in time. Check the address and"
                " your network, then try again.")
    if isinstance(error, errors.ConnectionClosed):
        return (f"The server{_where(address)} closed the connection. It may be restarting;"
                " try again in a moment.")
    if isinstance(error, errors.NoResponse):
        return _sentence(f"The connection to the server{_where(address)} failed:"
                         f" {_strip(error.message)}") + " Check your network and try again."
    return (f"Cannot connect to the server{_where(address)}"
            f" ({_strip(error.message)}). Check your network and the address in"
            f" {SETTINGS_HINT}.")


def _strip(text: str) -> str:
    return text.strip().rstrip(".")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


def _short(fingerprint: str) -> str:
    """``sha256:1f2e3d4c...`` shortened for a sentence (the full one is in the tooltip)."""
    return fingerprint[:23] + "…" if len(fingerprint) > 24 else fingerprint


# -- connection state ---------------------------------------------------------------------

_STATE_WORDS = {State.ONLINE: "Online", State.SYNCING: "Online, catching up…",
                State.CONNECTING: "Connecting…", State.HANDSHAKING: "Connecting…",
                State.LOGGING_IN: "Logging in…", State.OFFLINE: "Offline"}


def describe_state(state: ConnectionState, now: float | None = None) -> str:
    """The status bar's words for the connection, kept current (call again each second
    while reconnecting: the countdown moves)."""
    name = state.name
    reason = f" ({_strip(state.reason)})" if state.reason else ""
    if name == State.RECONNECTING:
        seconds = state.retry_in or 0.0
        if state.retry_at is not None and now is not None:
            seconds = max(0.0, state.retry_at - now)
        return f"Reconnecting in {max(1, int(seconds + 0.999))} s" + reason
    if name in (State.LOGIN_REQUIRED, State.FAILED):
        lead = "Logged out" if name == State.LOGIN_REQUIRED else "Offline"
        return lead + (f": {_strip(state.reason)}" if state.reason else "")
    return _STATE_WORDS.get(name, str(name))


def header_status(state: ConnectionState) -> str | None:
    """What a chat header says instead of presence while presence is not known: None
    when logged in (presence is current), else "connecting…" (Telegram's word): the
    client is trying, or will be in a moment."""
    if state.logged_in:
        return None
    if state.name in (State.LOGIN_REQUIRED, State.FAILED, State.OFFLINE):
        return "offline"
    return "connecting…"


# -- calls --------------------------------------------------------------------------------

def describe_call(status: calls.CallStatus) -> str:
    """The call window's line under the peer's name (before and after the timer)."""
    state = status.state
    if state == calls.OUTGOING:
        return "Calling…"
    if state == calls.INCOMING:
        return "Incoming call"
    if state in (calls.ACCEPTING, calls.CONNECTING):
        return "Connecting…"
    if state == calls.ACTIVE:
        return "In call"
    if state == calls.RECONNECTING:
        return "Reconnecting…"
    if state == calls.ENDED:
        return describe_call_end(status)
    return ""


def describe_call_end(status: calls.CallStatus, me: str | None = None) -> str:
    """Why a call ended, as a sentence (``me``: our own account name)."""
    reason, by, peer = status.end_reason, status.ended_by, status.peer or "the other side"
    if by is None:
        mine = False
    elif me is not None:
        mine = by.lower() == me.lower()
    else:
        mine = status.peer is not None and by.lower() != status.peer.lower()
    if reason == calls.HANGUP:
        return "Call ended." if mine else f"{by or peer} hung up."
    if reason == calls.DECLINED:
        return "You declined the call." if mine else f"{by or peer} declined the call."
    if reason == calls.CANCELLED:
        return "Call cancelled." if mine else f"Missed call from {by or peer}."
    if reason == calls.NO_ANSWER:
        return (f"Missed call from {peer}." if status.incoming
                else f"{peer} did not answer.")
    if reason == calls.DISCONNECTED:
        return f"The call ended: {by or peer} lost the connection."
    if reason == calls.CONNECTION_LOST:
        return "The call ended: the connection to the server was lost."
    if reason in (calls.MEDIA_FAILED, calls.MEDIA_LOST):
        lead = ("The call could not connect" if reason == calls.MEDIA_FAILED
                else "The call was lost")
        why = str(status.error) if status.error is not None else ""
        return f"{lead}: {why}." if why else f"{lead}: no audio reached {peer}."
    if reason == calls.FAILED and status.error is not None:
        lead = "The call could not go on: " if status.started is not None else \
            "The call could not start: "
        return lead + _lower_first(explain(status.error))
    return "Call ended."


# -- times and durations ------------------------------------------------------------------

def format_clock(timestamp: float) -> str:
    """"14:05" in local time."""
    return time.strftime("%H:%M", time.localtime(timestamp))


def format_day(timestamp: float, now: float | None = None) -> str:
    """"Today", "Yesterday", or "Monday 12 March 2026"."""
    day = datetime.fromtimestamp(timestamp).date()
    today = datetime.fromtimestamp(now if now is not None else time.time()).date()
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return f"{day:%A} {day.day} {day:%B %Y}"


def format_when(timestamp: float, now: float | None = None) -> str:
    """A list's time column: "14:05" today, else "12 Mar 2026 14:05"."""
    if format_day(timestamp, now) == "Today":
        return format_clock(timestamp)
    moment = datetime.fromtimestamp(timestamp)
    return f"{moment.day} {moment:%b %Y %H:%M}"


def format_list_time(timestamp: float, now: float | None = None) -> str:
    """The chat list's time: "14:05" today, "Mon" this week, "12 Mar" this year, else
    "12 Mar 2025"."""
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(timestamp)
    today = datetime.fromtimestamp(now).date()
    if moment.date() == today:
        return format_clock(timestamp)
    if today - timedelta(days=6) <= moment.date() < today:
        return f"{moment:%a}"
    if moment.year == today.year:
        return f"{moment.day} {moment:%b}"
    return f"{moment.day} {moment:%b %Y}"


def format_date(timestamp: float) -> str:
    """"23 Nov 2026"."""
    moment = datetime.fromtimestamp(timestamp)
    return f"{moment.day} {moment:%b %Y}"


def format_duration(seconds: float) -> str:
    """"0:42", "12:05", "1:02:03"."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
