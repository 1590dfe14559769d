"""The plaintexts of sealed media packets: probe clocks, redundant frames, REPORTs."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from messenger.wire import media
from messenger.wire import media_payloads as payloads
from messenger.wire.media import MalformedPacket


class ProbeTests(SynchronousTestCase):
    """PROBE and PROBE_ACK carry the prober's clock."""

    def test_probe_payload(self) -> None:
        """The probe clock round-trips; anything else has no clock."""
        self.assertEqual(payloads.probe_time(payloads.probe_payload(12.5)), 12.5)
        self.assertIsNone(payloads.probe_time(b"abc"))


class RedundancyTests(SynchronousTestCase):
    """AUDIO payloads that repeat earlier frames."""

    def test_round_trip(self) -> None:
        """The primary frame and the earlier ones (a DTX gap as an empty one) come back."""
        payload = payloads.pack_redundant(b"now", [b"before", b"", b"older"])
        self.assertEqual(payload[:7], b"\x03\x00\x06\x00\x00\x00\x05")
        self.assertEqual(payloads.unpack_redundant(payload),
                         (b"now", (b"before", b"", b"older")))
        self.assertEqual(payloads.unpack_redundant(payloads.pack_redundant(b"x", [])), (b"x", ()))

    def test_malformed(self) -> None:
        """Counts past the limit and lengths past the end are malformed, never a crash."""
        for bad in (b"", b"\x04" + bytes(8), b"\x01\x00", b"\x01\xff\xffabc"):
            self.assertRaises(MalformedPacket, payloads.unpack_redundant, bad)
        self.assertRaises(ValueError, payloads.pack_redundant, b"x", [b"a"] * 4)


class ReportTests(SynchronousTestCase):
    """REPORT: what the receiver of a stream saw."""

    def test_round_trip(self) -> None:
        """The fields survive; fractions over 1000 per mille are refused."""
        report = payloads.Report(12345, 678, 52, 17, 3, 1)
        self.assertEqual(payloads.decode_report(payloads.encode_report(report)), report)
        self.assertEqual(len(payloads.encode_report(report)), 15)
        self.assertRaises(MalformedPacket, payloads.decode_report, b"\x00" * 14)
        bad = payloads.encode_report(report)[:8] + b"\x07\xd0" + payloads.encode_report(report)[10:]
        self.assertRaises(MalformedPacket, payloads.decode_report, bad)

    def test_sealed_type(self) -> None:
        """REPORT is sealed type 7 (0x17)."""
        self.assertEqual(media.type_byte(media.REPORT), 0x17)
        self.assertIn(media.REPORT, media.SEALED_TYPES)
