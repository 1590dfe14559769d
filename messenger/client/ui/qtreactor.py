"""Install qt5reactor on a QApplication, in that order (qt5reactor's README).

trial's own Qt support would only make a QCoreApplication, which cannot host widgets;
``--reactor=messenger-qt5`` (the plugin in twisted/plugins) calls `install` here.
"""

from __future__ import annotations

import sys
from typing import Any

_app: Any = None  # the one QApplication, kept alive for the life of the process


def application() -> Any:
    """The process's QApplication, created on first use."""
    global _app
    from PyQt5.QtWidgets import QApplication

    if _app is None:
        _app = QApplication.instance() or QApplication(sys.argv[:1] or ["messenger-client"])
        _app.setApplicationName("Messenger")
        _app.setOrganizationName("Messenger")
    return _app


def install() -> Any:
    """Make the QApplication, then install qt5reactor as the global reactor."""
    application()
    import qt5reactor

    qt5reactor.install()
    from twisted.internet import reactor

    return reactor
