"""One call's media from microphone to loudspeaker: the call engine the client core drives.

capture -> echo/noise/gain (`dsp`) -> codec (FEC, DTX, redundancy) -> `MediaSession`
(UDP or TCP, sealed) ... peer ... `MediaSession` -> `JitterBuffer` -> `Playout` (decode,
FEC, PLC, comfort noise) -> playback, all paced by one `AudioPump` on the reactor.

Besides moving audio the engine watches the line and tells the truth about it
(``on_media(state, reason)``):

* ``active`` once audio flows **both ways**: the peer's audio arrives here and the peer's
  REPORT says ours arrives there. Before that the call is connecting, whatever a socket
  or a HELLO_ACK says; after ``setup_timeout`` (15 s) without it: ``failed``, with a
  reason that says which part did not work.
* ``reconnecting`` when nothing authentic has come from the peer for ``reconnect_after``
  (5 s), ``active`` again when it comes back, ``lost`` after ``lost_after`` (20 s).

Twice a second each side sends a REPORT of what it receives; the other side tunes its
encoder from it (`quality.EncoderAdapter`). ``stats()`` is a snapshot for the UI, with
the quality of the last few seconds (`quality.QualityMeter`), not of the whole call.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from messenger.client.calls import audio as audio_module
from messenger.client.calls.audio import AudioDevice, AudioPump, DeviceChoice
from messenger.client.calls.codec import (
    FRAME_SAMPLES,
    OPUS,
    PCM,
    SILENCE,
    Codec,
    CodecError,
    make_codec,
)
from messenger.client.calls.dsp import AudioProcessor, AudioSettings, processor_for
from messenger.client.calls.jitter import JitterBuffer
from messenger.client.calls.media import MediaSession, ReceivedAudio, SessionTiming
from messenger.client.calls.params import CallParams
from messenger.client.calls.playout import Playout
from messenger.client.calls.quality import EncoderAdapter, QualityMeter
from messenger.client.calls.stats import (
    ACTIVE,
    FAILED,
    LOST,
    RECONNECTING,
    STARTING,
    CallStats,
    MediaTiming,
    call_stats,
)
from messenger.wire import media
from messenger.wire import media_payloads as payloads


class CallEngine:
    """Runs the media of one call at a time."""

    log = Logger()

    def __init__(self, reactor: Any, *, input_device: DeviceChoice = None,
                 output_device: DeviceChoice = None, audio: AudioDevice | None = None,
                 interface: str = "", port: int = 0, timing: SessionTiming | None = None,
                 media_timing: MediaTiming | None = None,
                 processing: AudioSettings | None = None,
                 session_factory: Callable[..., MediaSession] = MediaSession,
                 on_path: Callable[[str], None] | None = None,
                 on_peer_bye: Callable[[], None] | None = None,
                 on_media: Callable[[str, str], None] | None = None) -> None:
        self._reactor = reactor
        self.input_device = input_device
        self.output_device = output_device
        self._injected_audio = audio
        self.interface = interface
        self.port = port
        self.timing = timing
        self.media_timing = media_timing or MediaTiming()
        self.processing = processing
        self._session_factory = session_factory
        self.on_path = on_path
        self.on_peer_bye = on_peer_bye
        self.on_media = on_media
        self.params: CallParams | None = None
        self.session: MediaSession | None = None
        self.jitter: JitterBuffer | None = None
        self.playout: Playout | None = None
        self.audio: AudioDevice | None = None
        self.processor: AudioProcessor | None = None
        self.audio_error = ""
        self.muted = False
        self.media_state = STARTING
        self.failure = ""
        self.meter = QualityMeter()
        self.adapter: EncoderAdapter | None = None
        self.peer_report: payloads.Report | None = None
        self._pump: AudioPump | None = None
        self._watch: LoopingCall | None = None
        self._encoder: Codec | None = None
        self._history: deque[bytes] = deque(maxlen=payloads.MAX_REDUNDANT)
        self._started = 0.0
        self._ended: float | None = None
        self._next_report = 0.0
        self._last_late = 0
        self._rehello_done = False
        self.audio_sent = 0

    @property
    def running(self) -> bool:
        return self.session is not None and self._ended is None

    @property
    def local_port(self) -> int | None:
        """The UDP port of the call socket (None before start)."""
        if self.session is None or self.session.transport is None:
            return None
        return self.session.transport.getHost().port

    @property
    def pump_started(self) -> float:
        """Reactor time of the first audio frame slot (capture and playback clocks)."""
        return self._pump._start if self._pump is not None else 0.0

    @staticmethod
    def list_devices() -> tuple[list[Any], list[Any]]:
        """(input devices, output devices) PortAudio sees, for a chooser; ([], []) when
        there is no pyaudio."""
        try:
            return audio_module.input_devices(), audio_module.output_devices()
        except audio_module.AudioUnavailable:
            return [], []

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
        device = self._open_audio()
        self.processor = processor_for(self.processing)
        # 60 ms: one frame more than the jitter alone needs, so that a lost packet's
        # copy (in the next packet) is here in time, and a stalled reactor does not
        # empty the queue in the middle of a word
        self.jitter = JitterBuffer(min_ms=60)
        self.playout = Playout(self.jitter)
        session = self._session_factory(
            params, self._reactor, timing=self.timing, on_audio=self._received,
            on_path=self._path_changed, on_bye=self._peer_bye, on_report=self._report,
            on_heard=self._heard)
        try:
            session.listen(self.interface, self.port)
        except Exception:
            device.close()
            raise
        self.session = session
        self.audio = device
        now = self._reactor.seconds()
        self._started = now
        self.adapter = EncoderAdapter(now)
        self._apply_plan()
        self._pump = AudioPump(device, self._reactor, self._captured, self._playback)
        self._pump.start()
        self._watch = LoopingCall(self._look)
        self._watch.clock = self._reactor
        self._watch.start(self.media_timing.watch, now=False)

    def _open_audio(self) -> AudioDevice:
        if self._injected_audio is not None:
            return self._injected_audio
        device, problem = audio_module.open_device(self.input_device, self.output_device)
        if problem:
            self.audio_error = problem
            self.log.warn("sound: {problem}", problem=problem)
        return device

    def switch_devices(self, input_device: DeviceChoice, output_device: DeviceChoice) -> str:
        """Use other sound devices from now on (mid-call too); returns the problem
        sentence, empty when both work."""
        self.input_device, self.output_device = input_device, output_device
        if self.audio is None or self._injected_audio is not None or self._ended is not None:
            return ""
        device, problem = audio_module.open_device(input_device, output_device)
        old, self.audio = self.audio, device
        if self._pump is not None:
            self._pump.device = device
        old.close()
        self.audio_error = problem
        return problem

    def set_processing(self, settings: AudioSettings | None) -> None:
        """Echo cancellation, noise suppression and gain on or off (mid-call too)."""
        self.processing = settings
        if self.session is not None and self._ended is None:
            self.processor = processor_for(settings)

    def stop(self) -> Deferred[None]:
        """End the call's media: BYE to the peer, close the socket and the sound device."""
        if self._ended is not None:
            return succeed(None)
        self._ended = self._reactor.seconds()
        if self._watch is not None and self._watch.running:
            self._watch.stop()
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
        if self.session is None or self._encoder is None:
            return
        if pcm is None:
            if getattr(self.audio, "capturing", True):
                return        # nothing captured yet
            pcm = SILENCE     # no microphone: listen-only, but the line stays alive
        if self.processor is not None:
            pcm = self.processor.capture(pcm)
        if self.muted:
            pcm = SILENCE
        payload = self._encoder.encode(pcm)
        if not payload:
            return            # DTX: nothing worth sending in this frame
        flags = 0
        wire = payload
        plan = self.adapter.plan if self.adapter is not None else None
        if plan is not None and plan.redundancy and self._encoder.name == OPUS:
            earlier = list(self._history)[-plan.redundancy:][::-1]
            wire = payloads.pack_redundant(payload, earlier)
            flags = media.REDUNDANT
        self._history.append(payload)
        if self.session.send_audio(slot * FRAME_SAMPLES, wire, self._encoder.codec_id, flags):
            self.audio_sent += 1

    def _received(self, packet: ReceivedAudio) -> None:
        jitter = self.jitter
        if jitter is None:
            return
        now = self._reactor.seconds()
        self.meter.audio(now, packet.seq)
        codec = packet.codec
        if packet.flags & media.REDUNDANT:
            try:
                primary, earlier = payloads.unpack_redundant(packet.payload)
            except media.MalformedPacket:
                if self.playout is not None:
                    self.playout.undecodable += 1
                return
            jitter.push(packet.seq, packet.stamp, (codec, primary), now)
            for back, frame in enumerate(earlier, start=1):
                if frame and packet.seq - back >= 0:
                    jitter.push(packet.seq - back, 0, (codec, frame), now, redundant=True)
        else:
            jitter.push(packet.seq, packet.stamp, (codec, packet.payload), now)

    def _playback(self, now: float) -> bytes:
        if self.playout is None:
            return SILENCE
        pcm = self.playout.next_frame(now)
        if self.processor is not None:
            self.processor.playback(pcm)
        return pcm

    def _heard(self) -> None:
        self.meter.heard(self._reactor.seconds())

    def _report(self, report: payloads.Report) -> None:
        self.peer_report = report
        if self.adapter is not None:
            self.adapter.report(report.loss_permille / 10.0, self._reactor.seconds())
            self._apply_plan()

    def _apply_plan(self) -> None:
        if self._encoder is not None and self.adapter is not None:
            plan = self.adapter.plan
            self._encoder.tune(plan.bitrate, plan.loss_percent, fec=True)

    def _path_changed(self, path: str) -> None:
        if self.on_path is not None:
            self.on_path(path)

    def _peer_bye(self) -> None:
        if self.on_peer_bye is not None:
            self.on_peer_bye()

    # -- watching the line ------------------------------------------------------------

    def _look(self) -> None:
        try:
            self._watch_step(self._reactor.seconds())
        except Exception:
            self.log.failure("call engine watch failed")

    def _watch_step(self, now: float) -> None:
        session, jitter, timing = self.session, self.jitter, self.media_timing
        if session is None or jitter is None or self._ended is not None:
            return
        if jitter.late > self._last_late:
            self.meter.late(now, jitter.late - self._last_late)
            self._last_late = jitter.late
        self.meter.jitter_ms = jitter.jitter_ms
        if now >= self._next_report:
            self._next_report = now + timing.report_interval
            session.send_report(self._make_report(now))
        heard = self.meter.last_heard
        silent = now - (heard if heard is not None else self._started)
        if silent >= timing.rehello_after and not self._rehello_done:
            self._rehello_done = True     # a blip or a new network: rebind at the relay
            session.kick(now)
        elif silent < timing.rehello_after:
            self._rehello_done = False
        state = self.media_state
        if state == STARTING:
            if self._two_way():
                self._set_media(ACTIVE)
            elif now - self._started >= timing.setup_timeout:
                self.failure = self.diagnose()
                self._set_media(FAILED, self.failure)
        elif state == ACTIVE and silent >= timing.reconnect_after:
            self._set_media(RECONNECTING)
        elif state == RECONNECTING:
            if silent < timing.reconnect_after:
                self._set_media(ACTIVE)
            elif silent >= timing.lost_after:
                self._set_media(LOST, "no audio from the other side for "
                                f"{int(timing.lost_after)} seconds")

    def _two_way(self) -> bool:
        report = self.peer_report
        return (self.session is not None and self.session.received_direct
                + self.session.received_relay > 0 and report is not None
                and report.received > 0)

    def diagnose(self) -> str:
        """Why audio does not flow both ways, in words for the user."""
        session, params = self.session, self.params
        if session is None or params is None:
            return "the call's media did not start"
        relay = f"{params.relay[0]}:{params.relay[1]}"
        if not session.hello_acked:
            tcp = f" or TCP {params.relay_tcp}" if params.relay_tcp else ""
            return (f"the server's call relay ({relay}) does not answer: UDP{tcp} to it is"
                    " blocked on this network")
        if not session.relay_ready:
            return "the other side never reached the server's call relay"
        if session.received_direct + session.received_relay == 0:
            return "no audio arrives from the other side"
        return "the other side does not receive our audio"

    def _make_report(self, now: float) -> payloads.Report:
        lost, late = self.meter.loss_fraction(now)
        session = self.session
        received = session.received_direct + session.received_relay if session else 0
        highest = self.jitter.highest if self.jitter is not None else -1
        heard = self.meter.last_heard
        flowing = heard is not None and now - heard < 1.0 and received > 0
        return payloads.Report(max(0, highest), received, round(lost * 1000),
                            round(self.meter.jitter_ms), round(late * 1000), int(flowing))

    def _set_media(self, state: str, reason: str = "") -> None:
        if state == self.media_state:
            return
        self.media_state = state
        self.log.info("call media: {state} {reason}", state=state, reason=reason)
        if self.on_media is not None:
            self.on_media(state, reason)

    # -- state ------------------------------------------------------------------------

    def stats(self) -> CallStats:
        """A snapshot for the UI (`stats.call_stats`)."""
        end = self._ended if self._ended is not None else self._reactor.seconds()
        return call_stats(session=self.session, jitter=self.jitter, playout=self.playout,
                          meter=self.meter, adapter=self.adapter, encoder=self._encoder,
                          report=self.peer_report, muted=self.muted,
                          audio_sent=self.audio_sent, audio_error=self.audio_error,
                          media_state=self.media_state, started=self._started, end=end)
