"""Unit tests of messenger.server.memory: when free heap memory goes back to the system."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.server import memory
from messenger.server.memory import TRIM_AFTER, Trimmer


class TrimmerTests(unittest.TestCase):

    def setUp(self) -> None:
        self.released: list[None] = []
        self.trimmer = Trimmer(lambda: self.released.append(None))

    def test_trims_after_a_crowd_has_gone(self) -> None:
        """Once the connections fell by TRIM_AFTER from their peak, the sweep trims once
        and the peak starts again from there."""
        for count in range(1, 201):
            self.trimmer.opened(count)
        self.trimmer.check(200 - TRIM_AFTER + 1)
        self.assertEqual(self.released, [])
        self.trimmer.check(200 - TRIM_AFTER)
        self.assertEqual((len(self.released), self.trimmer.trims), (1, 1))
        self.trimmer.check(200 - TRIM_AFTER)
        self.assertEqual(len(self.released), 1)
        self.assertEqual(self.trimmer.peak, 200 - TRIM_AFTER)

    def test_a_steady_server_never_trims(self) -> None:
        """Connections that come and go a few at a time cost no trimming."""
        for _ in range(100):
            self.trimmer.opened(50)
            self.trimmer.check(45)
        self.assertEqual(self.released, [])

    def test_release_free_memory_runs(self) -> None:
        """On glibc, malloc_trim is found and called; elsewhere nothing happens."""
        self.assertIn(memory.release_free_memory(), (True, False))
        self.patch(memory, "_trim", None)
        self.assertFalse(memory.release_free_memory())

    def test_no_c_library(self) -> None:
        """Without a C library to load, there is nothing to call."""
        def missing(name: str) -> None:
            raise OSError("no libc here")
        self.patch(memory.ctypes, "CDLL", missing)
        self.assertIsNone(memory._malloc_trim())
