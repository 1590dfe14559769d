"""What the client keeps between runs, in the user's config dir.

``$XDG_CONFIG_HOME/messenger/`` (``~/.config/messenger/`` when unset), mode 0700:

* ``client_key.pem``: the client's own RSA key, made once, mode 0600;
* ``known_servers``: pinned server keys (`messenger.client.known_servers`), mode 0600;
* ``sessions.json``: mode 0600, per server address: the resume token of each account
  that asked to be remembered (never a password), which account logged in last, the id of
  the last message delivered to each account (so a restart syncs from there), and the
  shared-secret file used for that server (its path, not the secret).

`Sessions` is the in-memory model of ``sessions.json``; `CredentialStore` does the file
work, blocking, so the client core calls it through a thread (``deferToThread``).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.logger import Logger

from messenger.wire import keys

log = Logger()

APP_DIR = "messenger"
CLIENT_KEY = "client_key.pem"
KNOWN_SERVERS = "known_servers"
SESSIONS = "sessions.json"
FORMAT_VERSION = 1


def default_config_dir(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/messenger``, or ``~/.config/messenger`` (XDG Base Directory:
    a relative ``XDG_CONFIG_HOME`` is ignored)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / APP_DIR
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config" / APP_DIR


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename), mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp: a fresh name each time (two writers in one process must not share one),
    # created 0600 with O_EXCL.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def tighten_permissions(path: Path, mode: int) -> None:
    """Take group and other permissions away from ``path`` if it has any."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & 0o077:
        log.warn("{path} was readable by other users (mode {mode:o}); set it to {new:o}",
                 path=str(path), mode=current, new=mode)
        path.chmod(mode)


# -- sessions.json ------------------------------------------------------------------------

@dataclass
class AccountRecord:
    account_name: str
    token: str | None = None
    token_expires: float | None = None
    last_msg_id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"account_name": self.account_name, "token": self.token,
                "token_expires": self.token_expires, "last_msg_id": self.last_msg_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountRecord:
        name = data.get("account_name")
        token = data.get("token")
        expires = data.get("token_expires")
        last = data.get("last_msg_id")
        if not isinstance(name, str):
            raise ValueError("account without a name")
        return cls(name, token if isinstance(token, str) else None,
                   float(expires) if isinstance(expires, (int, float)) else None,
                   last if type(last) is int and last >= 0 else 0)


@dataclass
class ServerRecord:
    current: str | None = None          # key of the account that logged in last
    secret_file: str | None = None      # the --secret-file used for this server
    accounts: dict[str, AccountRecord] = field(default_factory=dict)


class Sessions:
    """Tokens, cursors and defaults per server address ("host:port")."""

    def __init__(self) -> None:
        self.servers: dict[str, ServerRecord] = {}
        self.default_server: str | None = None

    @staticmethod
    def _key(name: str) -> str:
        return name.lower()

    def server(self, address: str) -> ServerRecord:
        return self.servers.setdefault(address.lower(), ServerRecord())

    def account(self, address: str, name: str) -> AccountRecord | None:
        record = self.servers.get(address.lower())
        return record.accounts.get(self._key(name)) if record else None

    def current(self, address: str) -> AccountRecord | None:
        """The account that logged in last on this server and still has a token."""
        record = self.servers.get(address.lower())
        if record is None or record.current is None:
            return None
        account = record.accounts.get(record.current)
        return account if account is not None and account.token else None

    def remember_login(self, address: str, name: str, token: str | None,
                       expires: float | None) -> AccountRecord:
        """A login succeeded: keep its token (None: do not keep one) and make it current."""
        record = self.server(address)
        key = self._key(name)
        account = record.accounts.get(key)
        if account is None:
            account = record.accounts[key] = AccountRecord(name)
        account.account_name = name
        account.token = token
        account.token_expires = expires if token else None
        record.current = key if token else record.current
        self.default_server = address.lower()
        return account

    def forget_token(self, address: str, name: str) -> bool:
        account = self.account(address, name)
        if account is None or account.token is None:
            return False
        account.token = None
        account.token_expires = None
        record = self.servers[address.lower()]
        if record.current == self._key(name):
            record.current = None
        return True

    def cursor(self, address: str, name: str) -> int:
        account = self.account(address, name)
        return account.last_msg_id if account else 0

    def set_cursor(self, address: str, name: str, last_msg_id: int) -> None:
        record = self.server(address)
        key = self._key(name)
        account = record.accounts.get(key)
        if account is None:
            account = record.accounts[key] = AccountRecord(name)
        if last_msg_id > account.last_msg_id:
            account.last_msg_id = last_msg_id

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "default_server": self.default_server,
            "servers": {
                address: {"current": record.current, "secret_file": record.secret_file,
                          "accounts": {key: account.to_json()
                                       for key, account in record.accounts.items()}}
                for address, record in self.servers.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> Sessions:
        sessions = cls()
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError("not a version 1 sessions file")
        default = data.get("default_server")
        sessions.default_server = default if isinstance(default, str) else None
        for address, raw in (data.get("servers") or {}).items():
            if not isinstance(raw, dict):
                continue
            record = ServerRecord()
            secret_file = raw.get("secret_file")
            record.secret_file = secret_file if isinstance(secret_file, str) else None
            for key, account in (raw.get("accounts") or {}).items():
                try:
                    record.accounts[key.lower()] = AccountRecord.from_json(account)
                except (ValueError, AttributeError):
                    continue
            current = raw.get("current")
            record.current = current if current in record.accounts else None
            sessions.servers[address.lower()] = record
        return sessions


# -- the directory ------------------------------------------------------------------------

class CredentialStore:
    """The files of the config dir. Every method blocks: call them off the reactor."""

    def __init__(self, config_dir: Path | None = None, key_bits: int = 3072) -> None:
        self.config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        self.key_bits = key_bits

    @property
    def client_key_path(self) -> Path:
        return self.config_dir / CLIENT_KEY

    @property
    def known_servers_path(self) -> Path:
        return self.config_dir / KNOWN_SERVERS

    @property
    def sessions_path(self) -> Path:
        return self.config_dir / SESSIONS

    def ensure_dir(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tighten_permissions(self.config_dir, 0o700)

    def load_or_create_client_key(self) -> tuple[rsa.RSAPrivateKey, bool]:
        """The client's RSA key, made (and saved 0600) on first use. (key, created now)"""
        self.ensure_dir()
        tighten_permissions(self.client_key_path, 0o600)
        return keys.load_or_create(self.client_key_path, self.key_bits)

    def load_sessions(self) -> Sessions:
        """The saved sessions; an absent file is empty, a damaged one is set aside."""
        path = self.sessions_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return Sessions()
        tighten_permissions(path, 0o600)
        try:
            return Sessions.from_json(json.loads(raw.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            aside = path.with_name(path.name + ".damaged")
            os.replace(path, aside)
            log.warn("{path} is damaged; moved it to {aside} and starting without saved"
                     " logins", path=str(path), aside=str(aside))
            return Sessions()

    def save_sessions(self, sessions: Sessions) -> None:
        self.write_sessions(render_sessions(sessions))

    def write_sessions(self, data: bytes) -> None:
        """Write an already rendered sessions file (see `render_sessions`)."""
        self.ensure_dir()
        write_private_file(self.sessions_path, data)


def render_sessions(sessions: Sessions) -> bytes:
    """The bytes of ``sessions.json`` (cheap: the reactor thread renders, a thread writes)."""
    return json.dumps(sessions.to_json(), indent=1, sort_keys=True).encode("utf-8") + b"\n"
