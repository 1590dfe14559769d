"""The members of the relay benchmark's calls: JIM signalling, then UDP media.

Each `CallMember` logs in, dials (or answers) its partner, and on ``call_start`` opens a
UDP socket (`MemberMedia`) that says HELLO to the relay until the peer is present, then
sends sealed AUDIO packets when its `relayload.RelayRun` says so.
"""

from __future__ import annotations

import base64
import json
import time
from array import array
from typing import Any

from twisted.internet.protocol import DatagramProtocol

from messenger.bench.conn import BenchConnection, request_id
from messenger.wire import media

PAYLOAD = 72          # bytes: one 20 ms Opus frame at 16 kHz (MACHINE-NOTES)
AUDIO_BYTE = media.type_byte(media.AUDIO)
HELLO_ACK_BYTE = media.type_byte(media.HELLO_ACK)
FILLER = bytes(PAYLOAD)


class MemberMedia(DatagramProtocol):
    """One member's UDP socket: HELLO until the peer is present, then AUDIO."""

    def __init__(self, member: CallMember) -> None:
        self.member = member
        self.run = member.run

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        m = self.member
        if data[0] == AUDIO_BYTE:
            seq = int.from_bytes(data[12:16], "big")
            peer = m.peer_member
            if seq >= len(peer.sent_t) or data[1] != peer.index:
                self.run.error(f"{m.name}: packet seq {seq} from sender {data[1]} not sent")
                return
            if m.seen[seq]:
                self.run.error(f"{m.name}: packet seq {seq} received twice")
                return
            m.seen[seq] = 1
            m.received += 1
            self.run.lat.append(time.monotonic_ns() - peer.sent_t[seq])
        elif data[0] == HELLO_ACK_BYTE:
            m.on_hello_ack(data)

class CallMember(BenchConnection):
    """A logged-in account that takes part in one call of a `relayload.RelayRun`."""

    def __init__(self, run: Any, name: str, pair: int, caller: bool, secret: bytes,
                 client_key: Any) -> None:
        super().__init__(name, secret, client_key, run.args.cipher, on_ready=run.logged_in,
                         on_fail=lambda c, why: run.fail(why), login=run.args.login,
                         quickack=False)
        self.run = run
        self.pair, self.caller = pair, caller
        self.partner: CallMember | None = None
        self.peer_member: CallMember | None = None   # same as partner once the call runs
        self.index = -1
        self.call_id = b""
        self.cipher: media.CallCipher | None = None
        self.relay_token = b""
        self.relay: tuple[str, int] = ("", 0)
        self.udp: Any = None
        self.hello_counter = 0
        self.peer_present = False
        self.next_seq = 0
        self.sent_t = array("q")
        self.seen = bytearray()
        self.received = 0
        self.last_action = ""

    # -- signalling (JIM) ------------------------------------------------------------
    def request(self, action: str, **fields: Any) -> None:
        self.last_action = action
        self.send_jim({"action": action, "id": request_id(), "time": time.time(),
                       **fields})

    def on_other(self, plaintext: bytes) -> None:
        message = json.loads(plaintext)
        action = message.get("action")
        code = message.get("response")
        if action == "call_ring":
            self.request("call_dial", user_id=message["from"])
        elif action == "call_start":
            self.start_media(message)
        elif action == "call_end":
            if self.run.state["phase"] not in ("closing",):
                self.run.fail(f"{self.name}: call ended: {message.get('reason')}")
        elif code is not None:
            added = self.last_action == "add_contact" and code in (201, 409)
            if added and self.caller and self.index < 0:
                # 409: already a contact (a reused server); either way, dial now.
                self.request("call_dial", user_id=self.partner.name)
            elif code >= 400:
                self.run.fail(f"{self.name}: {self.last_action} refused: {code}"
                              f" {message.get('error')}")

    @property
    def name(self) -> str:
        return self.user

    # -- media (UDP) -----------------------------------------------------------------
    def start_media(self, message: dict[str, Any]) -> None:
        self.index = message["member"]
        self.call_id = bytes.fromhex(message["call_id"])
        self.cipher = media.CallCipher(base64.b64decode(message["key"]))
        self.relay_token = base64.b64decode(message["token"])
        host, port = message["relay"]
        self.relay = (host, port)
        self.peer_member = self.partner
        self.udp = self.run.reactor.listenUDP(0, MemberMedia(self), interface="127.0.0.1")
        self.run.state["started"] += 1
        self.send_hello()

    def send_hello(self) -> None:
        if self.peer_present or self.run.state["phase"] in ("closing",):
            return
        packet = media.encode_hello(self.call_id, self.index, self.hello_counter,
                                    self.relay_token)
        self.hello_counter += 1
        self.udp.write(packet, self.relay)
        self.run.reactor.callLater(0.5, self.send_hello)

    def on_hello_ack(self, data: bytes) -> None:
        if not media.verify_signed(data, self.relay_token):
            self.run.error(f"{self.name}: HELLO_ACK with a bad tag")
            return
        ack = media.parse_hello_ack(data)
        if ack.peer_present and not self.peer_present:
            self.peer_present = True
            self.run.peer_present()

    def send_audio(self, t: int) -> None:
        seq = self.next_seq
        self.next_seq = seq + 1
        self.sent_t.append(t)
        self.udp.write(
            self.cipher.seal(media.AUDIO, self.index, self.call_id, seq, seq * 320,
                             FILLER, 1), self.relay)
