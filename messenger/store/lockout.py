"""Account lockout after repeated failed logins, as pure functions of (state, now, policy).

It lives with the store because the transitions run inside the login transactions
(`messenger.store.accounts`): the state is read, changed and written in one transaction,
so parallel guesses cannot lose counts and a lock set meanwhile is never lifted.

The state of one account is a frozen `LockState`; every function returns a new one and
the caller stores it (the store layer keeps the four fields in the users table). Nothing
here reads a clock or touches a database: ``now`` is passed in.

The rules, all in one place:

* **Series of failures.** A series opens at its first failed login (``first_failure``).
  A failure less than ``window`` seconds after ``first_failure`` adds to the series; a
  failure at or after ``first_failure + window`` starts a new series with a count of 1.
  The window is fixed at the start of the series, not sliding.
* **Automatic lock.** The failure that brings the count to ``failures`` locks the account
  until ``now + duration`` (`on_failure` reports ``locked_now=True`` once, so the caller
  can e-mail a warning). ``failures <= 0`` disables the automatic lock.
* **Failures while locked** neither count nor extend the lock: the state is returned
  unchanged, so a lock ends on time however hard someone keeps guessing.
* **A right password while locked is still refused.** That is the caller's job: check
  `is_locked` *before* looking at the password and answer 403 while it is true; do not
  call `on_success` then (if it is called anyway, it still does not lift the lock).
* **Success** (`on_success`) clears the count of a series; it never lifts a lock.
* **Expiry.** A timed lock ends by itself at ``locked_until`` (`is_locked` turns false);
  the first failure after that starts a new series from zero.
* **Admin lock.** `admin_lock` replaces any current lock: with ``until=None`` the account
  stays locked until an admin unlocks it; with a time it is a timed lock that expires
  like an automatic one. `unlock` lifts every lock and clears the count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple


class LockoutPolicy(NamedTuple):
    """``failures`` failed logins within ``window`` seconds lock for ``duration`` seconds."""

    failures: int
    window: float
    duration: float


@dataclass(frozen=True)
class LockState:
    """The lockout state of one account; ``LockState()`` is a clean, unlocked account.

    ``failed_count``: failures in the current series; ``first_failure``: when the series
    opened (None: no series); ``locked_until``: end of a timed lock (None: none, and a
    time in the past is an expired lock); ``admin_locked``: locked until an admin unlocks.
    """

    failed_count: int = 0
    first_failure: float | None = None
    locked_until: float | None = None
    admin_locked: bool = False


def is_locked(state: LockState, now: float) -> bool:
    """True while an admin lock holds or ``now`` is before ``locked_until``."""
    return state.admin_locked or (state.locked_until is not None and now < state.locked_until)


def locked_for(state: LockState, now: float) -> float | None:
    """Seconds until the account unlocks by itself: 0.0 when not locked, None when only
    an admin can unlock it."""
    if state.admin_locked:
        return None
    if state.locked_until is None or now >= state.locked_until:
        return 0.0
    return state.locked_until - now


def on_failure(state: LockState, now: float,
               policy: LockoutPolicy | tuple[int, float, float]) -> tuple[LockState, bool]:
    """Account for one failed login at ``now``; returns ``(new_state, locked_now)``.

    ``locked_now`` is true only for the failure that locks the account. While the account
    is locked the state is returned unchanged (the failure does not count and does not
    extend the lock). After a timed lock has expired, the failure opens a new series.
    """
    failures, window, duration = policy
    if is_locked(state, now):
        return state, False
    if state.locked_until is not None:          # an expired lock: start from zero
        state = LockState()
    if state.first_failure is None or now - state.first_failure >= window:
        count, first = 1, now
    else:
        count, first = state.failed_count + 1, state.first_failure
    if 0 < failures <= count:
        return replace(state, failed_count=count, first_failure=first,
                       locked_until=now + duration), True
    return replace(state, failed_count=count, first_failure=first), False


def on_success(state: LockState) -> LockState:
    """Account for a successful login: the failure count is cleared, locks are kept.

    Callers must refuse a login while `is_locked` is true before checking the password;
    this function does not (and, without ``now``, cannot) tell an expired lock from a
    current one, so it leaves ``locked_until`` and ``admin_locked`` alone.
    """
    if state.failed_count == 0 and state.first_failure is None:
        return state
    return replace(state, failed_count=0, first_failure=None)


def unlock(state: LockState) -> LockState:
    """An admin unlock: every lock lifted and the failure count cleared."""
    return LockState()


def admin_lock(state: LockState, until: float | None) -> LockState:
    """An admin lock, replacing any current lock and clearing the failure count.

    ``until=None`` locks until an admin unlocks; a time locks until then, after which
    the account unlocks by itself like after an automatic lock.
    """
    if until is None:
        return LockState(admin_locked=True)
    return LockState(locked_until=until)
