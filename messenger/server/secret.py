"""The deployment's shared secret: a text file whose stripped content is the HMAC key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create_secret(path: Path) -> tuple[bytes, bool]:
    """Read the secret; create the file (mode 0600, random secret) when it is absent.

    Returns the key bytes and whether the file was created now.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        created = True
    else:
        created = False
    try:
        secret = path.read_text("utf-8").strip().encode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"the secret file {path} is not UTF-8 text") from None
    if not secret:
        raise ValueError(f"the secret file {path} is empty")
    return secret, created
