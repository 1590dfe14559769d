"""When a mail that was not delivered is tried again, and when that is written down.

Pure functions, kept apart from the `Mailer` service that applies them; the service's
docstring says why retries back off with jitter and why not every attempt is written.
"""

from __future__ import annotations

JITTER = 0.2        # a delay is cut by up to this fraction at random
_MAX_DOUBLINGS = 60


def persist_attempt(attempts: int, error_changed: bool) -> bool:
    """Whether the `attempts`-th failed attempt is written to the spool file."""
    return error_changed or attempts & (attempts - 1) == 0


def backoff_delay(attempts: int, initial: float, maximum: float, sample: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1, 2, ...).

    `initial` doubles per attempt up to `maximum`, then shrinks by up to `JITTER` of itself
    according to `sample` in [0, 1). Never more than `maximum`, never negative.
    """
    doublings = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
    base = min(maximum, initial * 2.0 ** doublings)
    return max(0.0, base * (1.0 - JITTER * sample))
