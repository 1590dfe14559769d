"""Every server setting in one typed record.

`messenger.server.tap.Options` fills a `ServerConfig` from the command line and the
config file; tests build one directly. Components receive the config (or the few values
they need), never the Options object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from messenger.wire.suites import SUITES


@dataclass
class MailConfig:
    """Outgoing e-mail: an SMTP relay, or a Maildir under the data dir when host is empty."""

    relay_host: str = ""
    relay_port: int = 25
    starttls: bool = False          # require STARTTLS with the relay
    username: str = ""
    password: str = ""
    from_address: str = "messenger@localhost"
    retry_initial: float = 5.0      # seconds before the first retry after a failure
    retry_max: float = 600.0        # back-off ceiling
    relay_ca_file: str = ""         # PEM CA file for the relay's certificate (default: system)
    relay_timeout: float = 60.0     # seconds to connect / wait for each relay reply
    give_up_after: float = 5 * 24 * 3600.0  # temporary failures for this long -> failed/ (0: never)
    server_name: str = "Messenger"  # how the e-mails name this server
    new_location_prefix: int = 32   # IPv4 prefix length that counts as "the same place"
    new_location_prefix6: int = 64  # IPv6 prefix length
    queue_max: int = 1000           # mails waiting at most; past it new mails are dropped


@dataclass
class LimitsConfig:
    """Rate limits and lockout; see docs/OPERATIONS.md."""

    connections_per_minute: int = 60      # new connections per host (IPv4 address, IPv6 /64)
    connections_per_minute_network: int = 240  # ... per network (IPv4 /24, IPv6 /48)
    max_connections_per_host: int = 256   # open connections per host (a school's NAT)
    max_connections_per_network: int = 1024  # ... per network
    max_connections: int = 0              # in total; 0: the open-file limit minus a reserve
    logins_per_minute: int = 20           # login attempts per host
    logins_per_minute_network: int = 60   # ... per network
    requests_per_second: float = 50.0     # per connection, sustained (8 KiB = 1 request)
    request_burst: int = 200              # per connection, burst
    strikes_before_drop: int = 20         # 429s in a row before the connection is dropped
    bad_requests_per_second: float = 0.5  # 400s a connection may keep causing ...
    bad_request_burst: int = 30           # ... after this many at once; then it is closed
    crypto_ops_per_second: float = 100.0  # rsa-oaep: RSA private-key operations per connection
    crypto_burst: int = 400               # ... burst
    hash_queue: int = 32                  # password checks of existing accounts waiting
                                          # (and, apart, new hashes: registrations)
    decoy_queue: int = 4                  # ... of unknown names (decoy hashes)
    db_queue: int = 256                   # database operations waiting before 503
    max_contacts: int = 5000              # contacts per user
    stored_bytes_per_day: int = 64 * 1024 * 1024  # message bytes a user may store a day (0: off)
    max_group_members: int = 1000         # members per group (0: no limit)
    max_groups_per_user: int = 500        # groups a user may be a member of (0: no limit)
    max_group_name: int = 64              # characters in a group's name
    max_group_topic: int = 1024           # characters in a group's topic
    lockout_failures: int = 5             # failed logins ...
    lockout_window: float = 15 * 60.0     # ... within this many seconds lock the account
    lockout_duration: float = 15 * 60.0   # for this long


@dataclass
class FilesConfig:
    """Files in conversations; see docs/OPERATIONS.md, "Files"."""

    directory: str = ""                   # default: <data_dir>/files (shared by cluster nodes)
    quota: int = 1024 * 1024 * 1024       # bytes a user's files and uploads may hold (0: off)
    max_size: int = 100 * 1024 * 1024     # bytes of one file
    upload_expiry: float = 24 * 3600.0    # an unfinished upload untouched this long is deleted
    unposted_grace: float = 24 * 3600.0   # a finished file no message refers to, likewise
    io_threads: int = 2                   # threads reading and writing file bytes


@dataclass
class TlsConfig:
    port: int = 0                 # 0 = no TLS listener
    cert: str = ""
    key: str = ""


@dataclass
class ClusterConfig:
    """Cluster mode (docs/SCALING.md): nodes sharing PostgreSQL, routed over Redis."""

    redis: str = ""                # redis://[:PASSWORD@]HOST:PORT/DB; empty: one node
    node_name: str = ""            # unique in the cluster (default: host name and port)
    relay_address: str = ""        # HOST:PORT clients reach this node's UDP relay at


@dataclass
class ServerConfig:
    port: int = 7777
    interface: str = ""
    data_dir: Path = Path("var")
    secret_file: Path | None = None       # default: <data_dir>/secret
    max_frame: int = 128 * 1024           # client->server frame after login (16 KiB before)
    max_queued_bytes: int = 4 * 1024 * 1024  # queued for a client that does not read
    suites: tuple[str, ...] = SUITES      # offered, in order of preference
    auto_register: bool = False
    rsa_bits: int = 3072
    database: str = ""                    # SQLite file (default: <data_dir>/messenger.sqlite)
                                          # or a postgresql:// URL
    db_readers: int = 2                   # reader connections
    db_writers: int = 0                   # PostgreSQL writer connections (0: default, 2)
    max_body: int = 16 * 1024             # bytes of UTF-8 in a message or broadcast
    handshake_timeout: float = 10.0       # CHALLENGE and KEYX, each
    login_timeout: float = 60.0           # UNAUTHENTICATED
    probe_interval: float = 30.0          # READY: probe after this much silence ...
    probe_timeout: float = 15.0           # ... and drop when no answer within this
    token_lifetime: float = 30 * 24 * 3600.0
    scrypt_n: int = 2**15                 # password hash cost (memory 128 * n * r bytes)
    udp_port: int | None = None           # default: same number as the TCP port
    relay_tcp_port: int | None = None     # call relay over TCP; default UDP port + 1, -1 off
    call_ring_timeout: float = 45.0       # an unanswered dial ends after this
    public_host: str = ""                 # relay address told to clients (default: interface)
    persist: bool = True                  # False only for benchmarks: messages not stored
    db_sync: str = "full"                 # SQLite synchronous: "full" or "normal"
    commit_window: float = 0.002          # seconds a lone message waits for company
    retention_days: float = 0.0           # delete messages older than this (0: keep all)
    edit_window: float = 48 * 3600.0      # seconds an author may edit/delete (0: no limit)
    mail: MailConfig = field(default_factory=MailConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    metrics_port: int = 0                 # Prometheus /metrics and /health (0: off)
    metrics_interface: str = "127.0.0.1"

    @property
    def secret_path(self) -> Path:
        return self.secret_file if self.secret_file is not None else self.data_dir / "secret"

    @property
    def database_path(self) -> Path:
        return Path(self.database) if self.database else self.data_dir / "messenger.sqlite"

    @property
    def database_location(self) -> str | Path:
        """What the store opens: a PostgreSQL URL as given, else the SQLite file."""
        if self.database.startswith(("postgresql://", "postgres://")):
            return self.database
        return self.database_path

    @property
    def server_key_path(self) -> Path:
        return self.data_dir / "server_key.pem"

    @property
    def maildir_path(self) -> Path:
        return self.data_dir / "Maildir"

    @property
    def mail_spool_path(self) -> Path:
        return self.data_dir / "mail-spool"

    @property
    def files_path(self) -> Path:
        return Path(self.files.directory) if self.files.directory else self.data_dir / "files"

    @property
    def control_socket_path(self) -> Path:
        return self.data_dir / "control.sock"
