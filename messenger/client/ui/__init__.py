"""The PyQt5 desktop client (``messenger-client``): windows only.

The windows use the Qt-free client core (`messenger.client.MessengerClient`) through a
small bridge of QObjects (`bridge`) that turns the core's events into signals; they call
the core's methods and attach callbacks to the Deferreds, and never block the event loop
(qt5reactor runs Twisted inside Qt's). No protocol or crypto logic lives here, and every
sentence about a failure comes from one module (`messages`). docs/CLIENT-UI.md is the
guide to the windows; `app.main` is the entry point.
"""
