"""The messenger-qt5 reactor: widgets and Twisted share one event loop."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase


class QtReactorTests(TestCase):
    """Tests run under --reactor=messenger-qt5 with the offscreen platform."""

    def test_reactor_is_qt(self) -> None:
        """The global reactor is qt5reactor's, on a full QApplication."""
        from PyQt5.QtWidgets import QApplication

        self.assertIn("qt5reactor", type(reactor).__module__)
        self.assertIsInstance(QApplication.instance(), QApplication)

    @defer.inlineCallbacks
    def test_widget_and_timer(self) -> Any:
        """A Twisted timer fires while a widget is shown, and the widget renders."""
        from PyQt5.QtWidgets import QLabel

        label = QLabel("hello")
        label.resize(120, 30)
        label.show()
        self.addCleanup(label.close)
        value = yield task.deferLater(reactor, 0.05, lambda: "fired")
        self.assertEqual(value, "fired")
        image = label.grab().toImage()
        self.assertEqual((image.width(), image.height()), (120, 30))
        self.assertTrue(label.isVisible())
