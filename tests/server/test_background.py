"""Worker threads at a lower priority (messenger.server.background): a worker lowers its
own nice value once and keeps it; the main thread (the reactor's) is never lowered."""

from __future__ import annotations

import os
import threading

from twisted.trial import unittest

from messenger.server import background


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class BackgroundTests(unittest.TestCase):

    def run_in_thread(self, fn: object) -> list[object]:
        out: list[object] = []
        thread = threading.Thread(target=lambda: out.append(fn()))  # type: ignore[operator]
        thread.start()
        thread.join(10)
        return out

    def test_a_worker_is_lowered_once(self) -> None:
        """In a worker thread, in_background runs the job at a nice value raised by
        WORKER_NICE (capped at 19), and a second job does not lower it again."""
        before = _nice_of_this_thread()

        def job() -> tuple[int, int, int]:
            start = _nice_of_this_thread()
            first = background.in_background(_nice_of_this_thread)
            second = background.in_background(_nice_of_this_thread)
            return start, first, second
        ((start, first, second),) = self.run_in_thread(job)
        self.assertEqual(start, before)
        self.assertEqual(first, min(19, max(before, 0) + background.WORKER_NICE))
        self.assertEqual(second, first)
        self.assertEqual(_nice_of_this_thread(), before)

    def test_the_main_thread_is_never_lowered(self) -> None:
        """Called on the main thread (tests run jobs inline), nothing is reniced."""
        self.assertIs(threading.current_thread(), threading.main_thread())
        before = _nice_of_this_thread()
        self.assertEqual(background.in_background(lambda x: x + 1, 1), 2)
        self.assertEqual(_nice_of_this_thread(), before)
