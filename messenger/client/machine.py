"""A small explicit state machine: one table from (state, input) to (next state, output).

The client's two machines (`messenger.client.connection.Connection` and
`messenger.client.service.ConnectionService`) declare their whole behaviour as such a
table at the end of their class, in the manner of magic-wormhole's ``_boss.py``: states
named for what they mean (an `enum.Enum`), inputs as verbs, outputs as methods named for
their effect. `Machine.feed` is the only way in:

* the state changes *before* the output runs, so an output that causes another input
  (a Deferred that fires at once) finds the machine in its new state;
* an input the table has no row for in the current state is ignored (and logged at debug
  level): a late answer to a connection that has closed meets a state without that row,
  so no callback ever needs to ask whether it is still current;
* observers hear of the transition once it is complete (`Observers.held`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from twisted.logger import Logger

from messenger.client.events import Observers

S = TypeVar("S", bound=enum.Enum)
Output = Callable[..., None]
Table = Mapping[tuple[S, str], tuple[S, Output]]


def rows(states: Iterable[S], verb: str, output: Output,
         to: S | None = None) -> dict[tuple[S, str], tuple[S, Output]]:
    """Table rows for ``verb`` in each of ``states``, leading to ``to`` (None: staying in
    the same state); for the inputs that many states take alike."""
    return {(state, verb): (state if to is None else to, output) for state in states}


class Machine(Generic[S]):
    log = Logger()

    def __init__(self, owner: Any, initial: S, table: Table[S],
                 observers: Observers) -> None:
        self._owner = owner
        self._state = initial
        self._table = table
        self._inputs = frozenset(verb for _, verb in table)
        self._observers = observers

    @property
    def state(self) -> S:
        return self._state

    def feed(self, verb: str, *args: Any) -> bool:
        """Take input ``verb`` (with its arguments); False when ignored in this state."""
        row = self._table.get((self._state, verb))
        if row is None:
            if verb not in self._inputs:
                raise ValueError(f"{type(self._owner).__name__} has no input {verb!r}")
            self.log.debug("{machine}: {input} ignored in {state}",
                           machine=type(self._owner).__name__, input=verb,
                           state=self._state.name)
            return False
        self._state, output = row
        with self._observers.held():
            output(self._owner, *args)
        return True

    def on(self, verb: str) -> Callable[..., None]:
        """A callback that feeds ``verb`` with its arguments (for Deferreds and timers);
        it returns None, so a Deferred's failure ends there."""
        def callback(*args: Any) -> None:
            self.feed(verb, *args)
        return callback
