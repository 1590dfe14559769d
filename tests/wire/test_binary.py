"""Binary file frames (messenger.wire.binary): layouts packed and parsed byte for byte,
and every malformed frame refused with a readable reason."""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from messenger.wire import binary, jim
from messenger.wire.errors import BadRequest


class LayoutTests(SynchronousTestCase):

    def test_upload_data_layout(self):
        """0x01, upload id and offset as uint64 big-endian, then the bytes."""
        frame = binary.pack_data(binary.UPLOAD_DATA, 7, 65536, b"abc")
        self.assertEqual(frame, b"\x01" + (7).to_bytes(8, "big") + (65536).to_bytes(8, "big")
                         + b"abc")
        parsed = binary.parse(frame)
        self.assertEqual((parsed.kind, parsed.ident, parsed.offset, bytes(parsed.data)),
                         (binary.UPLOAD_DATA, 7, 65536, b"abc"))

    def test_read_layout(self):
        """0x02, file id, offset (uint64), length (uint32): exactly 21 bytes."""
        frame = binary.pack_read(12, 3, 500)
        self.assertEqual(frame, struct.pack(">BQQI", 2, 12, 3, 500))
        self.assertEqual(binary.parse(frame), binary.ReadFrame(12, 3, 500))

    def test_file_data_may_be_empty(self):
        """A file-data frame of no bytes parses (an empty file's read never happens, but
        the layout allows it)."""
        parsed = binary.parse(binary.pack_data(binary.FILE_DATA, 1, 0, b""))
        self.assertEqual((parsed.kind, bytes(parsed.data)), (binary.FILE_DATA, b""))

    def test_largest_read_fits_one_server_payload(self):
        """A read of MAX_READ bytes is answered by one frame of exactly the 1 MiB limit."""
        self.assertEqual(binary.MAX_READ + binary.DATA_HEADER_SIZE, jim.MAX_SERVER_PAYLOAD)

    def test_told_apart_from_json(self):
        """JSON starts with '{' or white space; binary frames with 1, 2 or 3."""
        self.assertTrue(binary.is_binary(binary.pack_read(1, 0, 1)))
        for plaintext in (b'{"a":1}', b' {"a":1}', b"\n{}", b""):
            self.assertFalse(binary.is_binary(plaintext))


class MalformedTests(SynchronousTestCase):

    def check(self, plaintext, words):
        error = self.assertRaises(BadRequest, binary.parse, plaintext)
        self.assertIn(words, error.message)

    def test_refusals(self):
        """Wrong sizes, ids of 0 or past 2^63 - 1, lengths out of range, an empty upload
        chunk, an unknown type: each a BadRequest saying what is wrong."""
        self.check(b"\x02" + b"\x00" * 19, "exactly 21 bytes")
        self.check(b"\x02" + b"\x00" * 21, "exactly 21 bytes")
        self.check(binary.pack_read(0, 0, 1), "file id must be 1")
        self.check(struct.pack(">BQQI", 2, 2**63, 0, 1), "file id must be 1")
        self.check(binary.pack_read(1, 2**63, 1), "offset must be at most")
        self.check(binary.pack_read(1, 0, 0), "1 to 1048559")
        self.check(binary.pack_read(1, 0, binary.MAX_READ + 1), "1 to 1048559")
        self.check(b"\x01" + b"\x00" * 15, "17-byte header")
        self.check(binary.pack_data(binary.UPLOAD_DATA, 1, 0, b""), "at least one byte")
        self.check(binary.pack_data(binary.UPLOAD_DATA, 0, 0, b"x"), "upload id")
        self.check(b"\x09abc", "unknown binary frame type 9")
        self.check(b"", "unknown binary frame type")
