"""Tests for messenger.client.calls.audio: non-blocking devices and reactor pacing."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from messenger.client.calls.audio import (
    AudioPump,
    AudioUnavailable,
    FakeAudioDevice,
    PyAudioDevice,
    resolve_device,
)
from messenger.client.calls.codec import FRAME_BYTES, SILENCE

DEVICES = [
    {"name": "HDA Intel: ALC892 Analog", "maxInputChannels": 2, "maxOutputChannels": 2},
    {"name": "USB Headset: Audio", "maxInputChannels": 1, "maxOutputChannels": 0},
    {"name": "USB Speaker", "maxInputChannels": 0, "maxOutputChannels": 2},
    {"name": "default", "maxInputChannels": 32, "maxOutputChannels": 32},
]


class FakeStream:
    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.read_available = 0
        self.write_available = 0
        self.reads = 0
        self.writes: list[bytes] = []
        self.closed = False

    def get_read_available(self) -> int:
        return self.read_available

    def get_write_available(self) -> int:
        return self.write_available

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        self.reads += 1
        return bytes([self.reads % 256]) * (frames * 2)

    def write(self, data: bytes, frames: int, exception_on_underflow: bool = False) -> None:
        self.writes.append(data)

    def stop_stream(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakePyAudioModule:
    """Enough of the pyaudio module for PyAudioDevice, with recordable streams."""

    paInt16 = 8

    def __init__(self, devices: list[dict[str, Any]] = DEVICES, fail: bool = False) -> None:
        self.devices = devices
        self.fail = fail
        self.streams: list[FakeStream] = []
        self.terminated = 0
        module = self

        class PyAudio:
            def get_device_count(self) -> int:
                return len(module.devices)

            def get_device_info_by_index(self, index: int) -> dict[str, Any]:
                return module.devices[index]

            def open(self, **kwargs: Any) -> FakeStream:
                if module.fail:
                    raise OSError(-9996, "Invalid input device")
                stream = FakeStream(kwargs)
                module.streams.append(stream)
                return stream

            def terminate(self) -> None:
                module.terminated += 1

        self.PyAudio = PyAudio


class ResolveTests(SynchronousTestCase):
    """Choosing a device by index or name."""

    def setUp(self) -> None:
        self.audio = FakePyAudioModule().PyAudio()

    def test_default(self) -> None:
        """None, "" and "default" mean PortAudio's default device."""
        for choice in (None, "", "default"):
            self.assertIsNone(resolve_device(self.audio, choice, capture=True))

    def test_index(self) -> None:
        """An index is taken if that device can capture (or play)."""
        self.assertEqual(resolve_device(self.audio, 1, capture=True), 1)
        self.assertRaises(AudioUnavailable, resolve_device, self.audio, 1, capture=False)
        self.assertRaises(AudioUnavailable, resolve_device, self.audio, 9, capture=True)

    def test_name(self) -> None:
        """Exact names win; a unique case-insensitive substring is enough."""
        self.assertEqual(resolve_device(self.audio, "USB Speaker", capture=False), 2)
        self.assertEqual(resolve_device(self.audio, "headset", capture=True), 1)
        self.assertEqual(resolve_device(self.audio, "usb", capture=True), 1)

    def test_ambiguous_or_missing(self) -> None:
        """Several or no matches are refused with a message naming the device."""
        error = self.assertRaises(AudioUnavailable, resolve_device, self.audio, "a",
                                  capture=True)
        self.assertIn("ambiguous", str(error))
        self.assertRaises(AudioUnavailable, resolve_device, self.audio, "bluetooth",
                          capture=False)


class PyAudioDeviceTests(SynchronousTestCase):
    """PyAudioDevice reads and writes only what will not block."""

    def setUp(self) -> None:
        self.module = FakePyAudioModule()
        self.device = PyAudioDevice("headset", "speaker", pyaudio_module=self.module)
        self.capture, self.playback = self.module.streams

    def test_opened_as_asked(self) -> None:
        """16 kHz mono int16 streams of 320-frame buffers on the chosen devices."""
        self.assertEqual(self.capture.kwargs["input_device_index"], 1)
        self.assertEqual(self.playback.kwargs["output_device_index"], 2)
        for stream in (self.capture, self.playback):
            self.assertEqual((stream.kwargs["rate"], stream.kwargs["channels"],
                              stream.kwargs["format"], stream.kwargs["frames_per_buffer"]),
                             (16000, 1, 8, 320))

    def test_read_only_when_ready(self) -> None:
        """Fewer than 320 samples ready: no read; enough: one frame."""
        self.capture.read_available = 319
        self.assertIsNone(self.device.read_frame())
        self.assertEqual(self.capture.reads, 0)
        self.capture.read_available = 640
        self.assertEqual(len(self.device.read_frame()), FRAME_BYTES)
        self.assertEqual(self.capture.reads, 1)

    def test_backlog_dropped(self) -> None:
        """A backlog of five frames or more loses one frame to keep the delay bounded."""
        self.capture.read_available = 5 * 320
        frame = self.device.read_frame()
        self.assertEqual((self.capture.reads, self.device.overflows), (2, 1))
        self.assertEqual(frame, bytes([2]) * FRAME_BYTES)

    def test_write_only_with_room(self) -> None:
        """No room: the frame is dropped and counted; room: written."""
        self.playback.write_available = 100
        self.assertFalse(self.device.write_frame(SILENCE))
        self.playback.write_available = 4096
        self.assertTrue(self.device.write_frame(SILENCE))
        self.assertEqual((len(self.playback.writes), self.device.dropped), (1, 1))

    def test_close(self) -> None:
        """close() closes both streams and PortAudio, once, and can be repeated."""
        self.device.close()
        self.device.close()
        self.assertTrue(self.capture.closed and self.playback.closed)
        self.assertEqual(self.module.terminated, 1)
        self.assertIsNone(self.device.read_frame())
        self.assertFalse(self.device.write_frame(SILENCE))

    def test_open_failure(self) -> None:
        """A device PortAudio refuses becomes AudioUnavailable, and PortAudio is released."""
        module = FakePyAudioModule(fail=True)
        self.assertRaises(AudioUnavailable, PyAudioDevice, pyaudio_module=module)
        self.assertEqual(module.terminated, 1)
        self.assertRaises(AudioUnavailable, PyAudioDevice, "nothing-like-this",
                          pyaudio_module=FakePyAudioModule())


class FakeAudioDeviceTests(SynchronousTestCase):
    """The stand-in device."""

    def test_capture_then_silence(self) -> None:
        """It captures the given bytes frame by frame, padded, then silence."""
        device = FakeAudioDevice(b"\x01" * 700)
        self.assertEqual(device.read_frame(), b"\x01" * 640)
        self.assertEqual(device.read_frame(), b"\x01" * 60 + bytes(580))
        self.assertEqual(device.read_frame(), SILENCE)

    def test_not_ready_and_closed(self) -> None:
        """Not ready or closed: nothing captured; closed: nothing played."""
        device = FakeAudioDevice(ready=False)
        self.assertIsNone(device.read_frame())
        self.assertTrue(device.write_frame(SILENCE))
        device.close()
        self.assertFalse(device.write_frame(SILENCE))
        self.assertEqual(device.played, [SILENCE])


class AudioPumpTests(SynchronousTestCase):
    """Pacing by the reactor clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.device = FakeAudioDevice(b"".join(bytes([i]) * FRAME_BYTES for i in range(200)))
        self.captured: list[tuple[bytes | None, int]] = []
        self.pump = AudioPump(self.device, self.clock,
                              lambda pcm, slot: self.captured.append((pcm, slot)),
                              lambda now: bytes([len(self.device.played) % 256]) * FRAME_BYTES)

    def test_one_frame_per_20ms(self) -> None:
        """Frames move at exactly 50 per second, however the device behaves."""
        self.pump.start()
        self.clock.pump([0.02] * 49)
        self.assertEqual(len(self.captured), 50)
        self.assertEqual(len(self.device.played), 50)
        self.assertEqual([slot for _, slot in self.captured], list(range(50)))

    def test_late_tick_catches_up(self) -> None:
        """A tick 100 ms late handles the five frames that fell due, in order."""
        self.pump.start()
        self.clock.advance(0.1)
        self.assertEqual([slot for _, slot in self.captured], [0, 1, 2, 3, 4, 5])
        self.assertEqual([pcm[0] for pcm, _ in self.captured], [0, 1, 2, 3, 4, 5])

    def test_stall_skips(self) -> None:
        """After a 1 s stall only max_catch_up frames are handled; the rest are skipped."""
        self.pump.start()
        self.clock.advance(1.0)
        self.assertEqual(len(self.captured), 11)
        self.assertEqual(self.pump.skipped, 40)
        self.assertEqual(self.captured[-1][1], 50)

    def test_not_ready_device(self) -> None:
        """A device with nothing captured yields None for the slot; playback goes on."""
        self.device.ready = False
        self.pump.start()
        self.clock.pump([0.02] * 4)
        self.assertEqual([pcm for pcm, _ in self.captured], [None] * 5)
        self.assertEqual(len(self.device.played), 5)

    def test_stop(self) -> None:
        """After stop() no more frames move and no timer is left."""
        self.pump.start()
        self.clock.advance(0.02)
        self.pump.stop()
        self.clock.advance(1.0)
        self.assertEqual(len(self.captured), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.pump.running)

    def test_failure_contained(self) -> None:
        """An exception in a callback is logged; the pump keeps its timer."""
        pump = AudioPump(self.device, self.clock, lambda pcm, slot: 1 / 0, lambda now: SILENCE)
        pump.start()
        self.clock.advance(0.02)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertTrue(pump.running)
