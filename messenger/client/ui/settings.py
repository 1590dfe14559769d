"""What the desktop client remembers between runs: server, secret file, TLS, last account.

Kept in ``desktop.json`` in the client's config dir (next to the key, tokens and pins of
`messenger.client.credentials`), mode 0600, written atomically off the reactor thread.
Never a password, a token or the secret itself: only the secret file's path. The
command line overrides what is saved, and what worked is saved again.
No Qt here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads

from messenger.client.credentials import write_private_file
from messenger.client.known_servers import format_address, parse_address

SETTINGS_FILE = "desktop.json"
DEFAULT_SERVER = "localhost:7777"


@dataclass(frozen=True)
class DesktopSettings:
    server: str = DEFAULT_SERVER      # "host:port"
    secret_file: str = ""             # path of the deployment's shared-secret file
    tls: bool = False
    ca_file: str = ""                 # TLS: trust these CA certificates (PEM) ...
    pin_cert: str = ""                # ... or exactly this server certificate (PEM)
    last_account: str = ""            # pre-filled in the login form
    remember: bool = True             # keep a resume token (log in by itself next time)
    theme: str = "system"             # system, light or dark
    input_device: str = ""            # microphone for calls ("" = the system's default)
    output_device: str = ""           # loudspeaker for calls ("" = the system's default)

    @property
    def host_port(self) -> tuple[str, int]:
        """(host, port); ValueError for an address that cannot be used."""
        return parse_address(self.server)

    @property
    def address(self) -> str:
        host, port = self.host_port
        return format_address(host, port)

    @property
    def connection(self) -> tuple[str, str, bool, str, str]:
        """What the client is built from: a change here needs a new client."""
        return (self.server, self.secret_file, self.tls, self.ca_file, self.pin_cert)

    def with_changes(self, **changes: Any) -> DesktopSettings:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> DesktopSettings:
        """Settings from a parsed file; unknown or mistyped fields are ignored."""
        if not isinstance(data, dict):
            return cls()
        values: dict[str, Any] = {}
        for spec in fields(cls):
            value = data.get(spec.name)
            default = getattr(cls, spec.name)
            if isinstance(value, type(default)):
                values[spec.name] = value
        return cls(**values)


def settings_path(config_dir: Path) -> Path:
    return Path(config_dir) / SETTINGS_FILE


def load_settings(config_dir: Path) -> DesktopSettings:
    """The saved settings, or the defaults (blocking: call before the reactor runs or
    through a thread). A damaged file gives the defaults."""
    try:
        raw = settings_path(config_dir).read_bytes()
        return DesktopSettings.from_json(json.loads(raw.decode("utf-8")))
    except (OSError, ValueError, UnicodeDecodeError):
        return DesktopSettings()


def render_settings(settings: DesktopSettings) -> bytes:
    return json.dumps(settings.to_json(), indent=1, sort_keys=True).encode("utf-8") + b"\n"


def save_settings(config_dir: Path, settings: DesktopSettings,
                  run_blocking: Any = None) -> defer.Deferred[None]:
    """Write the settings file off the reactor thread (0600, atomically)."""
    run = run_blocking or threads.deferToThread
    return run(write_private_file, settings_path(config_dir), render_settings(settings))


def read_secret(path: str) -> bytes:
    """The stripped bytes of the shared-secret file (blocking). Raises `SecretFileError`
    with a sentence a person can act on."""
    if not path:
        raise SecretFileError("No shared-secret file is chosen. Choose the file your"
                              " server administrator gave you in Server settings.")
    try:
        secret = Path(path).expanduser().read_bytes().strip()
    except FileNotFoundError:
        raise SecretFileError(f"There is no shared-secret file at {path}. Choose the file"
                              " your server administrator gave you in Server settings.")\
            from None
    except OSError as error:
        raise SecretFileError(f"The shared-secret file {path} cannot be read"
                              f" ({error.strerror}). Check its permissions, or choose"
                              " another file in Server settings.") from None
    if not secret:
        raise SecretFileError(f"The shared-secret file {path} is empty. Choose the file"
                              " your server administrator gave you in Server settings.")
    return secret


class SettingsProblem(Exception):
    """The settings cannot make a client; ``str()`` is a sentence for the user."""


class SecretFileError(SettingsProblem):
    """The shared-secret file cannot be used."""
