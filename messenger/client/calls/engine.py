"""One call's media from microphone to loudspeaker: the call engine the client core drives.

capture -> codec -> `MediaSession` (UDP, sealed) ... peer ... `MediaSession` ->
`JitterBuffer` -> codec -> playback, all paced by one `AudioPump` on the reactor.

``start(params)`` opens the sound device (pyaudio unless a device is injected; without a
usable card the call still runs, silent, and ``audio_error`` says why), the UDP socket and
the timers; ``stop()`` says BYE and closes everything. ``stats()`` is a snapshot for the
UI; ``muted`` sends silence instead of the microphone.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger

from messenger.client.calls.audio import (
    AudioDevice,
    AudioPump,
    AudioUnavailable,
    DeviceChoice,
    FakeAudioDevice,
    PyAudioDevice,
)
from messenger.client.calls.codec import (
    FRAME_SAMPLES,
    PCM,
    SILENCE,
    Codec,
    CodecError,
    codec_by_id,
    make_codec,
)
from messenger.client.calls.jitter import PLAY, REPEAT, JitterBuffer
from messenger.client.calls.media import (
    CONNECTING,
    CallParams,
    MediaSession,
    ReceivedAudio,
    SessionTiming,
)


@dataclass(frozen=True)
class CallStats:
    """What the call window shows; all counters since the call started."""

    path: str                # "connecting", "direct" or "relay"
    codec: str               # what we send
    muted: bool
    duration: float          # seconds since start
    packets_sent: int        # every UDP packet we sent (audio, probes, HELLOs)
    packets_received: int    # authenticated packets from the peer
    audio_sent: int
    audio_received: int
    received_direct: int
    received_relay: int
    lost: int
    late: int
    duplicate: int
    concealed: int
    discarded: int
    loss_percent: float
    jitter_ms: float
    depth_ms: float
    target_ms: float
    rtt_ms: float | None     # direct path round trip, when known
    dropped: int             # packets refused: forged, replayed, malformed, foreign
    undecodable: int
    audio_error: str         # empty, or why the sound device could not be used


class CallEngine:
    """Runs the media of one call at a time."""

    log = Logger()

    def __init__(self, reactor: Any, *, input_device: DeviceChoice = None,
                 output_device: DeviceChoice = None, audio: AudioDevice | None = None,
                 interface: str = "", port: int = 0, timing: SessionTiming | None = None,
                 session_factory: Callable[..., MediaSession] = MediaSession,
                 on_path: Callable[[str], None] | None = None,
                 on_peer_bye: Callable[[], None] | None = None) -> None:
        self._reactor = reactor
        self.input_device = input_device
        self.output_device = output_device
        self._injected_audio = audio
        self.interface = interface
        self.port = port
        self.timing = timing
        self._session_factory = session_factory
        self.on_path = on_path
        self.on_peer_bye = on_peer_bye
        self.params: CallParams | None = None
        self.session: MediaSession | None = None
        self.jitter: JitterBuffer | None = None
        self.audio: AudioDevice | None = None
        self.audio_error = ""
        self.muted = False
        self._pump: AudioPump | None = None
        self._encoder: Codec | None = None
        self._decoders: dict[int, Codec | None] = {}
        self._last_pcm = SILENCE
        self._started = 0.0
        self._ended: float | None = None
        self.audio_sent = 0
        self.undecodable = 0

    @property
    def running(self) -> bool:
        return self.session is not None and self._ended is None

    @property
    def local_port(self) -> int | None:
        """The UDP port of the call socket (None before start)."""
        if self.session is None or self.session.transport is None:
            return None
        return self.session.transport.getHost().port

    @inlineCallbacks
    def start(self, params: CallParams) -> Any:
        """Open sound and network for the call; fires when the media is running."""
        if self.session is not None or self.params is not None:
            raise RuntimeError("this engine already ran a call")
        self.params = params
        host = params.relay[0]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            address = yield self._reactor.resolve(host)
            params = dataclasses.replace(params, relay=(address, params.relay[1]))
            self.params = params
        if self._ended is not None:
            return   # stopped while the relay's name was being resolved
        try:
            self._encoder = make_codec(params.codec)
        except CodecError as exc:
            self.log.warn("codec {codec} unavailable ({error}); sending PCM",
                          codec=params.codec, error=str(exc))
            self._encoder = make_codec(PCM)
        # PortAudio's start-up blocks for a moment: do it before the socket is live
        audio = self._open_audio()
        self.jitter = JitterBuffer()
        session = self._session_factory(
            params, self._reactor, timing=self.timing, on_audio=self._received,
            on_path=self._path_changed, on_bye=self._peer_bye)
        try:
            session.listen(self.interface, self.port)
        except Exception:
            audio.close()
            raise
        self.session = session
        self.audio = audio
        self._started = self._reactor.seconds()
        self._pump = AudioPump(self.audio, self._reactor, self._captured, self._playback)
        self._pump.start()

    def _open_audio(self) -> AudioDevice:
        if self._injected_audio is not None:
            return self._injected_audio
        try:
            return PyAudioDevice(self.input_device, self.output_device)
        except AudioUnavailable as exc:
            self.audio_error = str(exc)
            self.log.warn("no sound device ({error}); the call runs silent", error=str(exc))
            return FakeAudioDevice()

    def stop(self) -> Deferred[None]:
        """End the call's media: BYE to the peer, close the socket and the sound device."""
        if self._ended is not None:
            return succeed(None)
        self._ended = self._reactor.seconds()
        if self.session is None:
            return succeed(None)
        if self._pump is not None:
            self._pump.stop()
        if self.audio is not None:
            self.audio.close()
        return self.session.close()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted

    # -- the media path ---------------------------------------------------------------

    def _captured(self, pcm: bytes | None, slot: int) -> None:
        if pcm is None or self.session is None or self._encoder is None:
            return
        if self.muted:
            pcm = SILENCE
        payload = self._encoder.encode(pcm)
        if self.session.send_audio(slot * FRAME_SAMPLES, payload, self._encoder.codec_id):
            self.audio_sent += 1

    def _received(self, packet: ReceivedAudio) -> None:
        if self.jitter is not None:
            self.jitter.push(packet.seq, packet.stamp, (packet.codec, packet.payload),
                             self._reactor.seconds())

    def _playback(self, now: float) -> bytes:
        if self.jitter is None:
            return SILENCE
        kind, item = self.jitter.pop(now)
        if kind == PLAY:
            codec_id, payload = item
            pcm = self._decode(codec_id, payload)
            if pcm is not None:
                self._last_pcm = pcm
                return pcm
            return SILENCE
        if kind == REPEAT:
            return self._last_pcm
        return SILENCE

    def _decode(self, codec_id: int, payload: bytes) -> bytes | None:
        decoder = self._decoders.get(codec_id, False)
        if decoder is False:
            try:
                decoder = codec_by_id(codec_id)
            except CodecError as exc:
                self.log.warn("cannot decode codec {codec}: {error}", codec=codec_id,
                              error=str(exc))
                decoder = None
            self._decoders[codec_id] = decoder
        if decoder is None:
            self.undecodable += 1
            return None
        try:
            return decoder.decode(payload)
        except CodecError:
            self.undecodable += 1
            return None

    def _path_changed(self, path: str) -> None:
        if self.on_path is not None:
            self.on_path(path)

    def _peer_bye(self) -> None:
        if self.on_peer_bye is not None:
            self.on_peer_bye()

    # -- state ------------------------------------------------------------------------

    def stats(self) -> CallStats:
        session = self.session
        jitter = self.jitter.stats() if self.jitter is not None else None
        end = self._ended if self._ended is not None else self._reactor.seconds()
        lost = jitter.lost if jitter else 0
        received = session.received_direct + session.received_relay if session else 0
        expected = received + lost
        return CallStats(
            path=session.path if session else CONNECTING,
            codec=self._encoder.name if self._encoder else "",
            muted=self.muted,
            duration=round(end - self._started, 3) if session else 0.0,
            packets_sent=session.packets_sent if session else 0,
            packets_received=session.packets_received if session else 0,
            audio_sent=self.audio_sent,
            audio_received=received,
            received_direct=session.received_direct if session else 0,
            received_relay=session.received_relay if session else 0,
            lost=lost,
            late=jitter.late if jitter else 0,
            duplicate=jitter.duplicate if jitter else 0,
            concealed=jitter.concealed if jitter else 0,
            discarded=jitter.discarded if jitter else 0,
            loss_percent=round(100.0 * lost / expected, 2) if expected else 0.0,
            jitter_ms=jitter.jitter_ms if jitter else 0.0,
            depth_ms=jitter.depth_ms if jitter else 0.0,
            target_ms=jitter.target_ms if jitter else 0.0,
            rtt_ms=session.rtt_ms if session else None,
            dropped=(session.dropped_auth + session.dropped_replay
                     + session.dropped_malformed + session.dropped_foreign) if session else 0,
            undecodable=self.undecodable,
            audio_error=self.audio_error,
        )
