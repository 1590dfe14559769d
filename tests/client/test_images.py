"""Images with Pillow (messenger.client.images): the sender's thumbnail fits the
protocol's limit, the receiver decodes only what is safe and small enough, and gets
None (a placeholder) for everything else."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

from PIL import Image
from twisted.trial.unittest import SynchronousTestCase

from messenger.client import images
from messenger.wire import jim


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


class ThumbnailTests(SynchronousTestCase):

    def write(self, data: bytes, name: str = "picture.png") -> Path:
        path = Path(self.mktemp())
        path.mkdir()
        target = path / name
        target.write_bytes(data)
        return target

    def test_image_info_of_a_photo(self):
        """A photo's fields: its size, and a JPEG thumbnail of at most 160 pixels a side
        whose base64 fits the protocol's limit."""
        photo = Image.effect_noise((1600, 900), 80).convert("RGB")
        info = images.image_info(self.write(encoded(photo, "JPEG", quality=90), "p.jpg"))
        self.assertEqual((info.width, info.height), (1600, 900))
        self.assertLessEqual(len(info.thumbnail), jim.THUMBNAIL_MAX)
        thumb = Image.open(io.BytesIO(base64.b64decode(info.thumbnail)))
        self.assertEqual((thumb.format, max(thumb.size)), ("JPEG", images.THUMBNAIL_SIDE))
        jim.base64_text(jim.THUMBNAIL_MAX)("thumbnail", info.thumbnail)  # the server's check

    def test_noise_is_squeezed_under_the_limit(self):
        """Even content that compresses badly gets a thumbnail under the limit."""
        noise = Image.effect_noise((1500, 1500), 120).convert("RGB")
        info = images.image_info(self.write(encoded(noise)))
        self.assertIsNotNone(info)
        self.assertLessEqual(len(info.thumbnail), jim.THUMBNAIL_MAX)

    def test_exif_orientation(self):
        """A photo stored sideways with an EXIF orientation is measured upright."""
        image = Image.new("RGB", (400, 200), (10, 200, 30))
        exif = image.getexif()
        exif[0x0112] = 6                      # rotate 90 degrees to display
        data = encoded(image, "JPEG", exif=exif.tobytes())
        info = images.image_info(self.write(data, "r.jpg"))
        self.assertEqual((info.width, info.height), (200, 400))

    def test_not_an_image(self):
        """A file that is not an image of a known format has no image fields."""
        self.assertIsNone(images.image_info(self.write(b"%PDF-1.7 not an image", "x.png")))
        missing = self.write(b"", "gone.png").with_name("missing.png")
        self.assertIsNone(images.image_info(missing))


class SafeDecodingTests(SynchronousTestCase):

    def test_thumbnail_round_trip(self):
        """A thumbnail made by a sender decodes on the receiving side."""
        raw = encoded(Image.new("RGB", (120, 80), (200, 0, 0)), "JPEG")
        image = images.decode_thumbnail(base64.b64encode(raw).decode())
        self.assertEqual(image.size, (120, 80))

    def test_decompression_bomb_is_refused(self):
        """An image whose header claims more pixels than allowed is never decoded: None
        (a placeholder), from the bytes or from a file."""
        bomb = png_header_only(60_000, 60_000)
        self.assertIsNone(images.open_image(bomb))
        self.assertIsNone(images.decode_thumbnail(base64.b64encode(
            png_header_only(2000, 2000)).decode()))
        self.assertIsNone(images.open_image(encoded(Image.new("L", (300, 300))),
                                            max_pixels=1000))

    def test_garbage_gives_a_placeholder(self):
        """Anything that is not a decodable image of a known format gives None."""
        truncated = encoded(Image.new("RGB", (64, 64), (1, 2, 3)))[:60]
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
        for thumbnail in ("not base64!", 17, None, "QUFB" * 5000,
                          base64.b64encode(b"hello").decode(),
                          base64.b64encode(truncated).decode(),
                          base64.b64encode(svg).decode()):
            self.assertIsNone(images.decode_thumbnail(thumbnail), repr(thumbnail)[:40])
