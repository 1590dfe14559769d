"""trial/twistd reactor plugin: ``--reactor=messenger-qt5`` (a QApplication, then qt5reactor)."""

from twisted.application.reactors import Reactor

messenger_qt5 = Reactor(
    "messenger-qt5",
    "messenger.client.ui.qtreactor",
    "qt5reactor on a QApplication (widgets work; QT_QPA_PLATFORM=offscreen for tests)",
)
