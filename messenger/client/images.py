"""Images in messages, with Pillow: the sender's thumbnail, the receiver's safe decoding.

The server never decodes an image (it cannot be made to by a hostile upload). The
*sending* client makes the attachment's image fields from its own file: width, height,
and a small JPEG thumbnail that fits the protocol's limit (`jim.THUMBNAIL_MAX` base64
characters). The *receiving* client decodes what others sent (a thumbnail, or a
downloaded file) with Pillow's decompression-bomb limits on: an image of more than
``max_pixels`` pixels, or any file Pillow cannot decode, gives None, and the front end
shows a placeholder instead. These functions block (they decode): the client core runs
them in a thread (`MessengerClient.image_info`, `MessengerClient.load_image`).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from messenger.wire.jim import IMAGE_SIDE_MAX, THUMBNAIL_MAX

THUMBNAIL_SIDE = 160                 # the thumbnail fits a square of this many pixels
MAX_PIXELS = 50_000_000              # decoding refuses images larger than this (50 MP)
MAX_THUMBNAIL_PIXELS = 1_000_000     # ... and thumbnails larger than this
# Formats a thumbnail or a preview may be decoded from: the usual photo and screenshot
# formats (fewer decoders, less attack surface than everything Pillow knows).
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError,
                  Image.DecompressionBombWarning, OSError, SyntaxError, ValueError,
                  EOFError, MemoryError, TypeError, AttributeError)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """An attachment's image fields: ``width``, ``height`` and ``thumbnail`` (base64)."""

    width: int
    height: int
    thumbnail: str

    def fields(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height, "thumbnail": self.thumbnail}


def open_image(source: bytes | str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image | None:
    """Decode an image (the bytes, or a file) into memory, or None: not an image of the
    known formats, damaged, or over ``max_pixels`` pixels (checked from the header before
    any pixel is decoded; Pillow's own bomb check is an error here too)."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream if stream is not None else Path(source), formats=FORMATS)
            width, height = image.size
            if width < 1 or height < 1 or width * height > max_pixels:
                image.close()
                return None
            image.load()
            return image
    except _DECODE_ERRORS:
        return None


def image_info(path: str | Path, max_pixels: int = MAX_PIXELS) -> ImageInfo | None:
    """The sender's side: the image fields of the file at ``path``, or None when it is
    not an image Pillow decodes (it is then sent as a plain file)."""
    image = open_image(path, max_pixels)
    if image is None:
        return None
    try:
        oriented = ImageOps.exif_transpose(image)
        width, height = oriented.size
        if width > IMAGE_SIDE_MAX or height > IMAGE_SIDE_MAX:
            return None
        thumbnail = make_thumbnail(oriented)
    except _DECODE_ERRORS:
        return None
    finally:
        image.close()
    if thumbnail is None:
        return None
    return ImageInfo(width, height, thumbnail)


def make_thumbnail(image: Image.Image) -> str | None:
    """A JPEG thumbnail of at most `THUMBNAIL_SIDE` pixels a side whose base64 fits the
    protocol's limit (quality lowered, then size halved, until it does)."""
    side, quality = THUMBNAIL_SIDE, 75
    rgb = image.convert("RGB")
    while side >= 16:
        small = rgb.copy()
        small.thumbnail((side, side))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=quality, optimize=True)
        encoded = base64.b64encode(out.getvalue()).decode("ascii")
        if len(encoded) <= THUMBNAIL_MAX:
            return encoded
        if quality > 40:
            quality -= 15
        else:
            side //= 2
    return None


def decode_thumbnail(thumbnail: object) -> Image.Image | None:
    """The receiver's side: an attachment's thumbnail as an image, or None (show a
    placeholder) for anything that is not a small image of a known format."""
    if not isinstance(thumbnail, str) or len(thumbnail) > THUMBNAIL_MAX:
        return None
    try:
        raw = base64.b64decode(thumbnail, validate=True)
    except (binascii.Error, ValueError):
        return None
    return open_image(raw, MAX_THUMBNAIL_PIXELS)
