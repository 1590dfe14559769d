"""twistd plugin: ``twistd messenger`` runs the Messenger server."""

from twisted.application.service import ServiceMaker

messenger = ServiceMaker(
    "Messenger server",
    "messenger.server.tap",
    "A self-hosted messenger speaking encrypted JIM over TCP.",
    "messenger",
)
