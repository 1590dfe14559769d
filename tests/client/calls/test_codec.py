"""Tests for messenger.client.calls.codec: PCM, Opus, availability and negotiation."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.client.calls import codec
from messenger.client.calls.codec import (
    FRAME_BYTES,
    OPUS,
    PCM,
    CodecError,
    OpusCodec,
    PcmCodec,
    available_codecs,
    choose_codec,
    codec_by_id,
    make_codec,
)
from tests.support.alsa import align, chirp, from_bytes, silence, to_bytes


class AvailabilityTests(SynchronousTestCase):
    """Which codecs this machine offers."""

    def test_opus_installed_here(self) -> None:
        """With opuslib and libopus0 installed (as on this machine) Opus comes first."""
        self.assertEqual(available_codecs(), [OPUS, PCM])

    def test_without_opus(self) -> None:
        """When opuslib or libopus is missing only PCM is offered and OpusCodec refuses."""
        self.patch(codec, "_opuslib", lambda: None)
        self.assertEqual(available_codecs(), [PCM])
        self.assertRaises(CodecError, OpusCodec)
        self.assertRaises(CodecError, make_codec, OPUS)


class NegotiationTests(SynchronousTestCase):
    """choose_codec: the caller's preference, limited by the callee."""

    def test_first_common(self) -> None:
        """Both have Opus: Opus. One lacks it: PCM."""
        self.assertEqual(choose_codec([OPUS, PCM], [OPUS, PCM]), OPUS)
        self.assertEqual(choose_codec([OPUS, PCM], [PCM]), PCM)
        self.assertEqual(choose_codec([PCM], [OPUS, PCM]), PCM)

    def test_caller_order_wins(self) -> None:
        """The offer's order decides between codecs both sides have."""
        self.assertEqual(choose_codec([PCM, OPUS], [OPUS, PCM]), PCM)

    def test_unknown_names_fall_back(self) -> None:
        """Names nobody knows are skipped; with nothing in common the answer is PCM."""
        self.assertEqual(choose_codec(["speex", "g711"], ["speex"]), PCM)
        self.assertEqual(choose_codec([], []), PCM)


class PcmTests(SynchronousTestCase):
    """Raw little-endian samples."""

    def test_round_trip_exact(self) -> None:
        """A frame comes back bit for bit and is 640 bytes on the wire."""
        frame = to_bytes(chirp(0.02))
        pcm = PcmCodec()
        payload = pcm.encode(frame)
        self.assertEqual(len(payload), FRAME_BYTES)
        self.assertEqual(pcm.decode(payload), frame)

    def test_wrong_size(self) -> None:
        """Anything but one 20 ms frame is refused."""
        pcm = PcmCodec()
        self.assertRaises(CodecError, pcm.encode, bytes(100))
        self.assertRaises(CodecError, pcm.decode, bytes(641))


class OpusTests(SynchronousTestCase):
    """libopus through opuslib."""

    def test_chirp_survives(self) -> None:
        """A chirp encoded and decoded frame by frame correlates above 0.99 when aligned."""
        signal = silence(0.1)
        signal.extend(chirp(0.6))
        signal.extend(silence(0.2))
        opus = OpusCodec()
        out = bytearray()
        sizes = []
        data = to_bytes(signal)
        for offset in range(0, len(data), FRAME_BYTES):
            payload = opus.encode(data[offset:offset + FRAME_BYTES])
            sizes.append(len(payload))
            out += opus.decode(payload)
        decoded = from_bytes(bytes(out))
        decoded.extend(silence(0.1))
        lag, score = align(signal, decoded)
        self.assertGreater(score, 0.99)
        self.assertTrue(90 <= lag <= 120, lag)   # the codec delay
        self.assertLess(max(sizes), 200)

    def test_garbage_refused(self) -> None:
        """A payload that is not one Opus frame raises CodecError, not a crash."""
        opus = OpusCodec()
        self.assertRaises(CodecError, opus.decode, b"")
        self.assertRaises(CodecError, opus.decode, b"\xff" * 300)
        self.assertRaises(CodecError, opus.encode, bytes(10))


class FactoryTests(SynchronousTestCase):
    """Codecs by name and by wire id."""

    def test_ids(self) -> None:
        """PCM is id 0 and Opus id 1, by name and by id."""
        self.assertEqual((make_codec(PCM).codec_id, make_codec(OPUS).codec_id), (0, 1))
        self.assertEqual((codec_by_id(0).name, codec_by_id(1).name), (PCM, OPUS))

    def test_unknown(self) -> None:
        """Unknown names and ids are a CodecError."""
        self.assertRaises(CodecError, make_codec, "mp3")
        self.assertRaises(CodecError, codec_by_id, 9)


class OpusResilienceTests(SynchronousTestCase):
    """In-band FEC, loss concealment and DTX through the encoder ctls."""

    def speech_frames(self) -> list[bytes]:
        from messenger.bench import speech
        data = speech.speech("a").tobytes()
        return [data[i:i + FRAME_BYTES] for i in range(0, len(data) - FRAME_BYTES + 1,
                                                         FRAME_BYTES)]

    def test_tune_reaches_libopus(self) -> None:
        """Bitrate, FEC and the loss hint are set in libopus itself (opuslib's own
        setters for these are broken), and DTX is on."""
        opus = OpusCodec()
        self.assertEqual(opus.settings(), {"bitrate": 32000, "fec": 1, "loss_percent": 0,
                                           "dtx": 1})
        opus.tune(24000, 7, fec=True)
        self.assertEqual(opus.settings(), {"bitrate": 24000, "fec": 1, "loss_percent": 7,
                                           "dtx": 1})

    def test_fec_copy_recovers_lost_frames(self) -> None:
        """With a loss hint each packet carries a copy of the previous frame: speech with
        every tenth frame lost, rebuilt from those copies, scores clearly better
        (PESQ-WB) than with the decoder's concealment alone."""
        import numpy as np

        from messenger.bench import speech
        encoder = OpusCodec(dtx=False)
        encoder.tune(32000, 10, fec=True)
        frames = self.speech_frames()
        packets = [encoder.encode(frame) for frame in frames]
        scores = []
        for use_fec in (True, False):
            decoder, out = OpusCodec(), []
            for index, packet in enumerate(packets):
                if index % 10 == 5:
                    following = packets[index + 1] if use_fec else None
                    out.append(decoder.conceal(following))
                else:
                    out.append(decoder.decode(packet))
            played = np.frombuffer(b"".join(out), dtype="<i2")
            scores.append(speech.score(speech.speech("a"), played)[0])
        self.assertGreater(scores[0], scores[1] + 0.3, scores)

    def test_dtx_sends_almost_nothing_in_silence(self) -> None:
        """In silence the encoder soon answers b"" (nothing to send) and sends a small
        refresh every 400 ms or so; concealment then gives a frame of comfort noise."""
        opus = OpusCodec()
        sent = [opus.encode(bytes(FRAME_BYTES)) for _ in range(100)]
        self.assertLess(sum(1 for packet in sent if packet), 15)
        self.assertEqual(len(opus.conceal()), FRAME_BYTES)

    def test_pcm_conceal_fades(self) -> None:
        """PCM has no concealment of its own: the last frame at half the level, then
        a quarter, ..."""
        pcm = PcmCodec()
        pcm.decode(to_bytes(silence(0.02)[:0] + __import__("array").array("h", [800] * 320)))
        self.assertEqual(from_bytes(pcm.conceal())[0], 400)
        self.assertEqual(from_bytes(pcm.conceal())[0], 200)
