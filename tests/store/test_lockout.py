"""Tests for messenger.store.lockout: account lockout as pure functions of now."""

from __future__ import annotations

import dataclasses

from twisted.internet import task
from twisted.trial import unittest

from messenger.server.config import LimitsConfig
from messenger.server.limits import lockout_policy
from messenger.store.lockout import (
    LockoutPolicy,
    LockState,
    admin_lock,
    is_locked,
    locked_for,
    on_failure,
    on_success,
    unlock,
)

POLICY = LockoutPolicy(failures=3, window=60.0, duration=300.0)


def fail(state: LockState, *times: float) -> tuple[LockState, list[bool]]:
    """Apply failures at the given times; return the state and each locked_now."""
    locked = []
    for now in times:
        state, locked_now = on_failure(state, now, POLICY)
        locked.append(locked_now)
    return state, locked


class PolicyTests(unittest.TestCase):
    def test_from_limits(self) -> None:
        """The policy takes failures, window and duration from LimitsConfig."""
        limits = LimitsConfig(lockout_failures=7, lockout_window=30.0, lockout_duration=90.0)
        self.assertEqual(lockout_policy(limits), (7, 30.0, 90.0))

    def test_default_limits(self) -> None:
        """The defaults lock after 5 failures in 15 minutes, for 15 minutes."""
        self.assertEqual(lockout_policy(LimitsConfig()), (5, 900.0, 900.0))

    def test_plain_tuple_policy(self) -> None:
        """A plain (failures, window, duration) tuple works as the policy."""
        state, locked_now = on_failure(LockState(), 0.0, (1, 10.0, 20.0))
        self.assertTrue(locked_now)
        self.assertEqual(state.locked_until, 20.0)


class LockStateTests(unittest.TestCase):
    def test_fresh_state_is_unlocked(self) -> None:
        """LockState() is a clean account: no failures, no lock."""
        state = LockState()
        self.assertEqual((state.failed_count, state.first_failure, state.locked_until,
                          state.admin_locked), (0, None, None, False))
        self.assertFalse(is_locked(state, 0.0))
        self.assertEqual(locked_for(state, 0.0), 0.0)

    def test_frozen(self) -> None:
        """States are immutable; every change is a new state."""
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, LockState(),
                          "failed_count", 3)


class OnFailureTests(unittest.TestCase):
    def test_counts_within_window(self) -> None:
        """Failures within the window add to one series opened by the first."""
        state, locked = fail(LockState(), 100.0, 130.0)
        self.assertEqual(state, LockState(failed_count=2, first_failure=100.0))
        self.assertEqual(locked, [False, False])

    def test_nth_failure_locks(self) -> None:
        """The failure that reaches the limit locks until now + duration, reported once."""
        state, locked = fail(LockState(), 100.0, 110.0, 159.0)
        self.assertEqual(locked, [False, False, True])
        self.assertEqual(state.locked_until, 459.0)
        self.assertTrue(is_locked(state, 159.0))
        self.assertTrue(is_locked(state, 458.9))
        self.assertEqual(locked_for(state, 359.0), 100.0)

    def test_failure_outside_window_restarts_series(self) -> None:
        """A failure at or after first_failure + window starts a new series of one."""
        state, locked = fail(LockState(), 0.0, 30.0, 60.0, 70.0)
        self.assertEqual(locked, [False, False, False, False])
        self.assertEqual(state, LockState(failed_count=2, first_failure=60.0))

    def test_window_is_fixed_not_sliding(self) -> None:
        """The window is anchored at the series' first failure, not at the latest one."""
        state, locked = fail(LockState(), 0.0, 59.0, 60.0, 119.0)
        self.assertEqual(locked, [False, False, False, False])
        self.assertEqual(state.failed_count, 2)

    def test_failure_while_locked_changes_nothing(self) -> None:
        """While locked a failure neither counts nor extends the lock."""
        locked_state, _ = fail(LockState(), 0.0, 1.0, 2.0)
        state, locked = fail(locked_state, 3.0, 100.0, 301.9)
        self.assertIs(state, locked_state)
        self.assertEqual(locked, [False, False, False])
        self.assertFalse(is_locked(state, 302.0))

    def test_lock_ends_at_locked_until(self) -> None:
        """A timed lock holds before locked_until and not at it."""
        state, _ = fail(LockState(), 0.0, 0.0, 0.0)
        self.assertTrue(is_locked(state, 299.999))
        self.assertFalse(is_locked(state, 300.0))
        self.assertEqual(locked_for(state, 300.0), 0.0)

    def test_failure_after_expiry_starts_from_zero(self) -> None:
        """The first failure after a lock expired opens a new series with a count of 1."""
        state, _ = fail(LockState(), 0.0, 1.0, 2.0)
        state, locked = fail(state, 302.0)
        self.assertEqual(state, LockState(failed_count=1, first_failure=302.0))
        self.assertEqual(locked, [False])
        state, locked = fail(state, 303.0, 304.0)
        self.assertEqual(locked, [False, True])
        self.assertEqual(state.locked_until, 604.0)

    def test_zero_failures_disables_lockout(self) -> None:
        """With failures set to 0 failures are counted but never lock."""
        state = LockState()
        for now in range(100):
            state, locked_now = on_failure(state, float(now), (0, 1000.0, 60.0))
            self.assertFalse(locked_now)
        self.assertFalse(is_locked(state, 100.0))
        self.assertEqual(state.failed_count, 100)

    def test_failure_during_admin_lock_changes_nothing(self) -> None:
        """Failures against an admin-locked account are ignored too."""
        state = admin_lock(LockState(), None)
        self.assertEqual(fail(state, 1.0, 2.0, 3.0, 4.0), (state, [False] * 4))


class OnSuccessTests(unittest.TestCase):
    def test_clears_count(self) -> None:
        """A successful login ends the series of failures."""
        state, _ = fail(LockState(), 0.0, 1.0)
        self.assertEqual(on_success(state), LockState())
        state, locked = fail(on_success(state), 2.0, 3.0)
        self.assertEqual(locked, [False, False])

    def test_does_not_lift_a_lock(self) -> None:
        """A success (which the caller must not even reach while locked) keeps the lock."""
        state, _ = fail(LockState(), 0.0, 1.0, 2.0)
        after = on_success(state)
        self.assertTrue(is_locked(after, 10.0))
        self.assertEqual(after.locked_until, 302.0)
        self.assertTrue(is_locked(on_success(admin_lock(LockState(), None)), 10.0))

    def test_clean_state_unchanged(self) -> None:
        """Success on a clean account returns the same state (nothing to store)."""
        state = LockState()
        self.assertIs(on_success(state), state)


class AdminTests(unittest.TestCase):
    def test_admin_lock_until_unlocked(self) -> None:
        """admin_lock(None) holds at any time until an admin unlocks."""
        state = admin_lock(LockState(), None)
        self.assertTrue(is_locked(state, 1e12))
        self.assertIsNone(locked_for(state, 0.0))
        self.assertFalse(is_locked(unlock(state), 0.0))

    def test_admin_lock_with_time_expires(self) -> None:
        """admin_lock(until) is a timed lock that ends by itself."""
        state = admin_lock(LockState(), 500.0)
        self.assertTrue(is_locked(state, 499.0))
        self.assertEqual(locked_for(state, 400.0), 100.0)
        self.assertFalse(is_locked(state, 500.0))

    def test_admin_lock_replaces_current_lock(self) -> None:
        """An admin lock replaces an automatic one and clears the failure count."""
        state, _ = fail(LockState(), 0.0, 1.0, 2.0)
        shorter = admin_lock(state, 50.0)
        self.assertEqual(shorter, LockState(locked_until=50.0))
        self.assertFalse(is_locked(shorter, 50.0))
        forever = admin_lock(shorter, None)
        self.assertEqual(forever, LockState(admin_locked=True))
        self.assertEqual(admin_lock(forever, 10.0), LockState(locked_until=10.0))

    def test_unlock_clears_everything(self) -> None:
        """unlock lifts automatic and admin locks and forgets the failures."""
        state, _ = fail(LockState(), 0.0, 1.0, 2.0)
        self.assertEqual(unlock(state), LockState())
        self.assertEqual(unlock(admin_lock(state, None)), LockState())
        state, locked = fail(unlock(state), 3.0, 4.0)
        self.assertEqual(locked, [False, False])


class ClockDrivenTests(unittest.TestCase):
    def test_login_sequence_with_clock(self) -> None:
        """Driven by task.Clock: lock after the limit, refuse meanwhile, open on time."""
        clock = task.Clock()
        policy = lockout_policy(LimitsConfig())
        state = LockState()
        locks = []
        for _ in range(5):
            clock.advance(10)
            state, locked_now = on_failure(state, clock.seconds(), policy)
            locks.append(locked_now)
        self.assertEqual(locks, [False, False, False, False, True])
        clock.advance(policy.duration - 1)
        self.assertTrue(is_locked(state, clock.seconds()))
        clock.advance(1)
        self.assertFalse(is_locked(state, clock.seconds()))
        state = on_success(state)
        self.assertEqual(state.failed_count, 0)
