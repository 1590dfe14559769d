"""Sound in and out: pyaudio devices that never block, paced by the reactor.

A device reads and writes whole 20 ms frames (16 kHz mono int16, 640 bytes) and never
blocks: `PyAudioDevice.read_frame` returns a frame only when the capture stream already
holds one (``get_read_available``), `write_frame` writes only when the playback stream
has room (``get_write_available``). Nothing here waits on the sound card, because some
devices (ALSA's ``null``/``file`` plugins, used in tests) never block and so never pace:
`AudioPump` does the pacing with a reactor `LoopingCall`, moving exactly the number of
frames the reactor clock says are due.

`FakeAudioDevice` stands in where there is no sound card or no pyaudio: it captures from
a byte string (then silence) and records what is played.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from messenger.client.calls.codec import CHANNELS, FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, RATE

DeviceChoice = int | str | None   # index, (part of) a name, or None for the default
BACKLOG_FRAMES = 5                # captured frames waiting beyond this: drop one


class AudioUnavailable(Exception):
    """pyaudio is missing, or the chosen device cannot be opened."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    inputs: int
    outputs: int


class AudioDevice:
    """Capture and playback of 20 ms frames without blocking."""

    frame_bytes = FRAME_BYTES
    capturing = True          # False: playback only (no microphone), the call listens

    def read_frame(self) -> bytes | None:
        """One captured frame if one is ready, else None."""
        raise NotImplementedError

    def write_frame(self, pcm: bytes) -> bool:
        """Queue one frame for playback; False (frame dropped) when there is no room."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _pyaudio(module: Any = None) -> Any:
    if module is not None:
        return module
    try:
        import pyaudio  # noqa: PLC0415 - optional: the client runs without sound
    except ImportError as exc:
        raise AudioUnavailable("pyaudio is not installed") from exc
    return pyaudio


def list_devices(pyaudio_module: Any = None) -> list[DeviceInfo]:
    """The sound devices PortAudio sees, for a device chooser."""
    pyaudio = _pyaudio(pyaudio_module)
    audio = pyaudio.PyAudio()
    try:
        return [_info(audio.get_device_info_by_index(i), i)
                for i in range(audio.get_device_count())]
    finally:
        audio.terminate()


def _info(raw: dict[str, Any], index: int) -> DeviceInfo:
    return DeviceInfo(index, str(raw.get("name", "")), int(raw.get("maxInputChannels", 0)),
                      int(raw.get("maxOutputChannels", 0)))


def resolve_device(audio: Any, choice: DeviceChoice, capture: bool) -> int | None:
    """The PortAudio index for ``choice``: an index, an exact name, or a unique substring.

    None (or "default"/"") means the default device. Raises `AudioUnavailable` when no
    device of the right direction matches, or a substring matches several.
    """
    if choice is None or choice == "" or choice == "default":
        return None
    devices = [_info(audio.get_device_info_by_index(i), i)
               for i in range(audio.get_device_count())]
    usable = [d for d in devices if (d.inputs if capture else d.outputs) > 0]
    kind = "capture" if capture else "playback"
    if isinstance(choice, int):
        if any(d.index == choice for d in usable):
            return choice
        raise AudioUnavailable(f"no {kind} device with index {choice}")
    exact = [d for d in usable if d.name == choice]
    if exact:
        return exact[0].index
    partial = [d for d in usable if choice.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0].index
    if partial:
        names = ", ".join(d.name for d in partial)
        raise AudioUnavailable(f"{kind} device {choice!r} is ambiguous: {names}")
    raise AudioUnavailable(f"no {kind} device named {choice!r}")


def input_devices(pyaudio_module: Any = None) -> list[DeviceInfo]:
    """Devices that can capture (microphones), for a chooser."""
    return [d for d in list_devices(pyaudio_module) if d.inputs > 0]


def output_devices(pyaudio_module: Any = None) -> list[DeviceInfo]:
    """Devices that can play (loudspeakers, headsets), for a chooser."""
    return [d for d in list_devices(pyaudio_module) if d.outputs > 0]


NO_MICROPHONE = "No microphone was found: you can listen, but the other side will not hear you."
NO_SPEAKER = ("No loudspeaker or headset was found: the other side can hear you, but you"
              " will not hear them.")
NO_SOUND = ("No sound device was found: this call will be silent on this side. Plug in a"
            " headset, or choose a device under Devices.")
NO_PYAUDIO = "Sound is not available (pyaudio is not installed): calls are silent here."


@dataclass(frozen=True)
class DeviceCheck:
    """What a call can do with the sound devices here, said before the call starts."""

    can_speak: bool
    can_hear: bool
    problem: str = ""        # a sentence for the user; empty when both work
    detail: str = ""         # PortAudio's own words, for the log and a tooltip


def check_devices(input_device: DeviceChoice = None, output_device: DeviceChoice = None,
                  pyaudio_module: Any = None) -> DeviceCheck:
    """Whether the chosen (or default) capture and playback devices exist, without
    opening a stream. PortAudio's raw errors ("[Errno -9996] Invalid input device")
    become a sentence that says what works and what does not."""
    try:
        pyaudio = _pyaudio(pyaudio_module)
    except AudioUnavailable as exc:
        return DeviceCheck(False, False, NO_PYAUDIO, str(exc))
    audio = pyaudio.PyAudio()
    details = []
    try:
        speak = _exists(audio, input_device, True, details)
        hear = _exists(audio, output_device, False, details)
    finally:
        audio.terminate()
    problem = ("" if speak and hear else NO_SOUND if not (speak or hear)
               else NO_MICROPHONE if not speak else NO_SPEAKER)
    return DeviceCheck(speak, hear, problem, "; ".join(details))


def _exists(audio: Any, choice: DeviceChoice, capture: bool, details: list[str]) -> bool:
    try:
        index = resolve_device(audio, choice, capture)
        if index is None:
            info = (audio.get_default_input_device_info() if capture
                    else audio.get_default_output_device_info())
            index = int(info["index"])
        info = audio.get_device_info_by_index(index)
        channels = info.get("maxInputChannels" if capture else "maxOutputChannels", 0)
        if int(channels) <= 0:
            raise AudioUnavailable("the device has no such channels")
    except Exception as exc:  # AudioUnavailable, PortAudio's IOError/OSError
        details.append(f"{'capture' if capture else 'playback'}: {exc}")
        return False
    return True


def open_device(input_device: DeviceChoice = None, output_device: DeviceChoice = None,
                pyaudio_module: Any = None) -> tuple[AudioDevice, str]:
    """The best device the machine allows and the sentence for what is missing.

    Both directions if possible; else playback only (the call can still be answered to
    listen) or capture only; else a silent stand-in.
    """
    attempts = ((True, True, ""), (False, True, NO_MICROPHONE), (True, False, NO_SPEAKER))
    reasons = []
    for capture, playback, problem in attempts:
        try:
            return PyAudioDevice(input_device, output_device, capture=capture,
                                 playback=playback, pyaudio_module=pyaudio_module), problem
        except AudioUnavailable as exc:
            reasons.append(str(exc))
    return FakeAudioDevice(), NO_PYAUDIO if "not installed" in reasons[0] else NO_SOUND


class PyAudioDevice(AudioDevice):
    """Blocking-mode PortAudio streams used only when they will not block."""

    log = Logger()

    def __init__(self, input_device: DeviceChoice = None, output_device: DeviceChoice = None,
                 *, capture: bool = True, playback: bool = True,
                 pyaudio_module: Any = None) -> None:
        pyaudio = _pyaudio(pyaudio_module)
        self._audio = pyaudio.PyAudio()
        self._input = None
        self._output = None
        try:
            if capture:
                index = resolve_device(self._audio, input_device, capture=True)
                self._input = self._audio.open(
                    format=pyaudio.paInt16, channels=CHANNELS, rate=RATE, input=True,
                    frames_per_buffer=FRAME_SAMPLES, input_device_index=index)
            if playback:
                index = resolve_device(self._audio, output_device, capture=False)
                self._output = self._audio.open(
                    format=pyaudio.paInt16, channels=CHANNELS, rate=RATE, output=True,
                    frames_per_buffer=FRAME_SAMPLES, output_device_index=index)
        except AudioUnavailable:
            self.close()
            raise
        except Exception as exc:  # PortAudio raises OSError/ValueError with a code
            self.close()
            raise AudioUnavailable(f"cannot open the sound device: {exc}") from exc
        self.capturing = self._input is not None
        self.overflows = 0   # captured frames dropped because the backlog grew too long
        self.dropped = 0     # playback frames dropped for want of room

    def read_frame(self) -> bytes | None:
        stream = self._input
        if stream is None:
            return None
        available = stream.get_read_available()
        if available < FRAME_SAMPLES:
            return None
        if available >= BACKLOG_FRAMES * FRAME_SAMPLES:
            # the card runs ahead of the reactor clock: drop a frame to bound the delay
            stream.read(FRAME_SAMPLES, exception_on_overflow=False)
            self.overflows += 1
        return bytes(stream.read(FRAME_SAMPLES, exception_on_overflow=False))

    def write_frame(self, pcm: bytes) -> bool:
        stream = self._output
        if stream is None:
            return False
        if stream.get_write_available() < FRAME_SAMPLES:
            self.dropped += 1
            return False
        stream.write(pcm, FRAME_SAMPLES, exception_on_underflow=False)
        return True

    def close(self) -> None:
        for stream in (self._input, self._output):
            if stream is None:
                continue
            try:
                stream.stop_stream()
                stream.close()
            except Exception:
                self.log.failure("closing an audio stream failed")
        self._input = self._output = None
        if self._audio is not None:
            self._audio.terminate()
            self._audio = None


class FakeAudioDevice(AudioDevice):
    """No sound card: capture from ``capture`` (then silence), record what is played."""

    def __init__(self, capture: bytes = b"", *, ready: bool = True) -> None:
        self._capture = bytes(capture)
        self._offset = 0
        self.ready = ready            # False: behave like a device with nothing captured yet
        self.played: list[bytes] = []
        self.closed = False

    def read_frame(self) -> bytes | None:
        if not self.ready or self.closed:
            return None
        frame = self._capture[self._offset:self._offset + FRAME_BYTES]
        self._offset += FRAME_BYTES
        return frame + bytes(FRAME_BYTES - len(frame))

    def write_frame(self, pcm: bytes) -> bool:
        if self.closed:
            return False
        self.played.append(pcm)
        return True

    def close(self) -> None:
        self.closed = True


class AudioPump:
    """Moves frames at real time on the reactor clock: capture -> ``on_capture``, and
    ``next_playback()`` -> playback, once per due frame, never blocking.

    Each tick works out from the clock how many 20 ms frames are due since the start and
    handles exactly that many, so a late tick catches up and a device that never blocks
    is still paced. After a stall longer than ``max_catch_up`` frames the excess is
    skipped rather than sent in a burst.
    """

    log = Logger()

    def __init__(self, device: AudioDevice, reactor: Any,
                 on_capture: Callable[[bytes | None, int], None],
                 next_playback: Callable[[float], bytes], *, frame_ms: int = FRAME_MS,
                 max_catch_up: int = 10) -> None:
        self.device = device
        self._clock = reactor
        self._on_capture = on_capture
        self._next_playback = next_playback
        self._frame = frame_ms / 1000.0
        self._max_catch_up = max_catch_up
        self._loop: LoopingCall | None = None
        self._start = 0.0
        self.frames = 0           # frame slots handled since start
        self.skipped = 0          # frame slots skipped after a stall

    def start(self) -> None:
        self._start = self._clock.seconds()
        self.frames = 0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self._frame, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.running

    def _tick(self) -> None:
        now = self._clock.seconds()
        due = int((now - self._start) / self._frame + 1e-6) + 1 - self.frames
        if due > self._max_catch_up:
            self.skipped += due - self._max_catch_up
            self.frames += due - self._max_catch_up
            due = self._max_catch_up
        try:
            for _ in range(due):
                # the slot index doubles as the sample clock of the frame
                slot = self.frames
                self.frames += 1
                self._on_capture(self.device.read_frame(), slot)
                self.device.write_frame(self._next_playback(now))
        except Exception:
            self.log.failure("audio pump tick failed")
