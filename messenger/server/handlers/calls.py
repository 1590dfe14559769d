"""Call signalling (call_dial, call_hangup); filled in with the UDP relay."""

from __future__ import annotations

ROUTES: dict = {}
