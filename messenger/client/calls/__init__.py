"""Voice calls, media side: codecs, jitter buffer, UDP media session, audio, call engine.

The JIM signalling (dial, ring, start, hang up) lives in the client core; when a call
starts it builds a `CallParams` and hands it to a `CallEngine`. See docs/CALLS.md.
Nothing here imports Qt.
"""

from messenger.client.calls.codec import available_codecs, choose_codec
from messenger.client.calls.engine import CallEngine, CallStats
from messenger.client.calls.media import (
    CONNECTING,
    DIRECT,
    RELAY,
    CallParams,
    MediaSession,
    SessionTiming,
    call_params_from_jim,
)

__all__ = [
    "CONNECTING",
    "DIRECT",
    "RELAY",
    "CallEngine",
    "CallParams",
    "CallStats",
    "MediaSession",
    "SessionTiming",
    "available_codecs",
    "call_params_from_jim",
    "choose_codec",
]
