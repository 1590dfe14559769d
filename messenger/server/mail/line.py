"""Mails that are due but wait for a delivery slot: security mails first.

At most ``max_parallel`` deliveries run at once and one slot is kept for security mails
(lockout, new location), so a flood of welcome mails to a slow relay cannot hold back a
lockout warning. The `Mailer` asks `slots` before it starts a delivery, queues a mail
here with `wait` when none is free, and takes the `next` one when a delivery ends.
"""

from __future__ import annotations

from collections import deque

SECURITY_TEMPLATES = frozenset({"lockout", "new_location"})


class DeliveryLine:
    """Two queues of mail ids in due order (security mails, the others) and the slots."""

    def __init__(self, max_parallel: int) -> None:
        self.max_parallel = max_parallel
        self._urgent: deque[str] = deque()
        self._other: deque[str] = deque()
        self._waiting: set[str] = set()          # what the two queues hold

    def __contains__(self, mail_id: object) -> bool:
        return mail_id in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def slots(self, urgent: bool) -> int:
        """Deliveries that may run at once: one slot is kept for security mails."""
        return self.max_parallel if urgent else max(1, self.max_parallel - 1)

    def wait(self, mail_id: str, urgent: bool) -> None:
        """Queue ``mail_id`` (once) until a slot is free."""
        if mail_id not in self._waiting:
            self._waiting.add(mail_id)
            (self._urgent if urgent else self._other).append(mail_id)

    def remove(self, mail_id: str) -> None:
        """Forget ``mail_id`` (it was dropped from the queue)."""
        if mail_id in self._waiting:
            self._waiting.discard(mail_id)
            for queue in (self._urgent, self._other):
                if mail_id in queue:
                    queue.remove(mail_id)

    def next(self, in_flight: int) -> str | None:
        """The next waiting mail that may start with ``in_flight`` deliveries running."""
        if self._urgent and in_flight < self.slots(True):
            mail_id = self._urgent.popleft()
        elif self._other and in_flight < self.slots(False):
            mail_id = self._other.popleft()
        else:
            return None
        self._waiting.discard(mail_id)
        return mail_id
