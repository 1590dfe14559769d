"""Tests for messenger.client.machine: one table from (state, input) to (state, output)."""

from __future__ import annotations

import enum
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.events import Observers
from messenger.client.machine import Machine, rows


class Light(enum.Enum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


class Lamp:
    """A small owner: switching on emits an event, breaking happens from inside."""

    def __init__(self, observers: Observers) -> None:
        self.observers = observers
        self.machine: Machine[Light] = Machine(self, Light.OFF, self._TABLE, observers)
        self.log: list[Any] = []

    def _switched_on(self, brightness: int) -> None:
        self.log.append(("on", brightness, self.machine.state))
        self.observers.emit("state", "on")
        if brightness > 100:
            self.machine.feed("overload")   # an output causing the next input

    def _switched_off(self) -> None:
        self.log.append(("off", self.machine.state))

    def _burnt(self, *why: Any) -> None:
        self.log.append(("burnt", self.machine.state))
        self.observers.emit("state", "broken")

    _TABLE = {
        (Light.OFF, "switch_on"): (Light.ON, _switched_on),
        (Light.ON, "overload"): (Light.BROKEN, _burnt),
        **rows((Light.ON, Light.BROKEN), "switch_off", _switched_off, to=Light.OFF),
    }


class MachineTests(unittest.TestCase):
    def setUp(self) -> None:
        self.observers = Observers()
        self.heard: list[tuple[str, Any]] = []
        self.observers.subscribe("state", lambda name: self.heard.append(
            (name, self.lamp.machine.state)))
        self.lamp = Lamp(self.observers)

    def test_the_state_changes_before_the_output_runs(self):
        """An output sees the machine in its new state already."""
        self.assertTrue(self.lamp.machine.feed("switch_on", 60))
        self.assertEqual(self.lamp.log, [("on", 60, Light.ON)])

    def test_an_input_the_state_has_no_row_for_is_ignored(self):
        """A late input (a callback of something that ended) changes nothing."""
        self.assertFalse(self.lamp.machine.feed("overload"))
        self.assertEqual((self.lamp.machine.state, self.lamp.log), (Light.OFF, []))

    def test_an_unknown_input_is_a_bug(self):
        """A verb in no row at all is a typo, and says so."""
        self.assertRaises(ValueError, self.lamp.machine.feed, "explode")

    def test_observers_hear_of_a_transition_once_it_is_complete(self):
        """Events emitted inside a transition (and the ones it causes) are delivered
        after it, in order, each seeing the final state."""
        self.lamp.machine.feed("switch_on", 150)
        self.assertEqual(self.lamp.log, [("on", 150, Light.ON), ("burnt", Light.BROKEN)])
        self.assertEqual(self.heard, [("on", Light.BROKEN), ("broken", Light.BROKEN)])

    def test_rows_lead_many_states_alike(self):
        """rows() gives one input the same effect in several states."""
        for start in ("switch_on", None):
            if start:
                self.lamp.machine.feed(start, 1)
            self.lamp.machine.feed("switch_off")
        self.assertEqual(self.lamp.machine.state, Light.OFF)
        self.assertEqual(self.lamp.log[-1], ("off", Light.OFF))

    def test_on_makes_a_callback_that_consumes_a_failure(self):
        """machine.on(verb) feeds the verb from a Deferred, and ends its chain."""
        d: defer.Deferred = defer.Deferred()
        d.addCallbacks(self.lamp.machine.on("switch_on"), self.lamp.machine.on("overload"))
        d.callback(10)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.lamp.machine.state, Light.ON)
        failing: defer.Deferred = defer.Deferred()
        failing.addErrback(self.lamp.machine.on("overload"))
        failing.errback(RuntimeError("boom"))
        self.assertIsNone(self.successResultOf(failing))
