"""twistd with one proposed hot-path change monkeypatched in (bench experiment only)."""
import json.encoder
import sys

from messenger.wire import jim

_enc = json.encoder.c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",",
                                   False, False, False)


def encode(message):
    return "".join(_enc(message, 0)).encode("utf-8")


jim.encode = encode
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
