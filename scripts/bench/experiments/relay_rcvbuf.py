"""twistd with a 4 MiB receive buffer on the UDP relay socket (bench experiment only)."""
import socket
import sys

from messenger.server import relay


def startProtocol(self):  # noqa: N802
    self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)


relay.RelayProtocol.startProtocol = startProtocol
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
