"""``twistd messenger``: command-line and config-file options, and the service they make.

Every option can also be set in an INI file given with ``--config FILE``: a
``[messenger]`` section whose keys are the long option names (``data-dir = /srv/m``;
``data_dir`` works too; flags take yes/no). The command line wins over the file.
Relative paths in the file are relative to the directory the server starts in.
`Options.postOptions` checks every value, so a mistake stops ``twistd`` with one line
naming the option (not twistd's whole usage text), before anything is started.

Operations (issue 16): ``--metrics-port``/``--metrics-interface`` (Prometheus and
``/health``), ``--log-format``, ``--log-max-bytes``/``--log-max-files`` (the observer is
installed on twistd's application by `makeService`, see `messenger.server.logs.output`)
and ``--mail-queue-max``.
"""

from __future__ import annotations

import configparser
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.logger import ILogObserver
from twisted.python import usage

from messenger.server.config import (
    ClusterConfig,
    FilesConfig,
    LimitsConfig,
    MailConfig,
    ServerConfig,
    TlsConfig,
)
from messenger.server.logs import output as log_output
from messenger.server.mail.compose import split_sender
from messenger.server.options import FLAGS, PARAMETERS
from messenger.store.engines import is_postgres_url
from messenger.wire import jim
from messenger.wire.suites import SUITES

MIB = 1024 * 1024
MAX_FRAME_LIMIT = 64 * MIB
MAX_SCRYPT_N = 2**20        # 1 GiB of memory per hash: more is a typo
MIN_SCRYPT_N = 2**14        # below this a stolen database is too cheap to attack
# Test suites and benchmarks of other parts set this to hash cheaply: never in production.
WEAK_HASHING_ENV = "MESSENGER_TEST_WEAK_HASHING"
MAX_BODY_LIMIT = 64 * 1024  # so that any body, JSON-escaped, fits in one 1 MiB reply
RSA_SIZES = (2048, 3072, 4096)

# Options that must be positive numbers of seconds, minutes or days.
_POSITIVE = ("handshake-timeout", "login-timeout", "probe-interval", "probe-timeout",
             "token-days", "ring-timeout", "smtp-timeout", "lockout-window",
             "lockout-duration", "max-file-mib", "upload-expiry-hours",
             "unposted-file-hours")
# Options that may be 0 (a limit that is off) but not negative.
_NOT_NEGATIVE = ("mail-give-up-days", "connections-per-minute", "logins-per-minute",
                 "requests-per-second", "request-burst", "lockout-failures",
                 "connections-per-minute-network", "max-connections-per-host",
                 "max-connections-per-network", "max-connections", "logins-per-minute-network",
                 "crypto-ops-per-second", "bad-requests-per-second", "max-contacts",
                 "stored-mib-per-day", "retention-days", "max-group-members",
                 "max-groups-per-user", "file-quota-mib", "edit-window")
# Options that must be at least 1.
_AT_LEAST_ONE = ("hash-queue", "decoy-queue", "db-queue", "file-io-threads")
MAX_FILE_MIB = 2**33        # 8 PiB: the protocol's sizes stay exact JSON numbers


_KINDS = {int: "a whole number", float: "a number"}


def _named(name: str, coerce: Callable[[str], Any]) -> Callable[[str], Any]:
    """``coerce`` whose ValueError names the option and what it wants."""
    def named(value: str) -> Any:
        try:
            return coerce(value)
        except ValueError:
            kind = _KINDS.get(coerce, "a valid value")  # type: ignore[call-overload]
            raise ValueError(f"--{name} must be {kind}, not {value!r}") from None
    named.coerceDoc = getattr(coerce, "coerceDoc", "")  # type: ignore[attr-defined]
    return named


def _with_named_coercions(parameters: list[list[Any]]) -> list[list[Any]]:
    return [[*entry[:4], _named(entry[0], entry[4])] if len(entry) > 4 else entry
            for entry in parameters]


def _check_ops(options: Any) -> None:
    if not 0 <= options["metrics-port"] <= 65535:
        raise usage.UsageError("--metrics-port must be 0..65535 (0 turns metrics off)")
    if options["log-format"] not in log_output.LOG_FORMATS:
        raise usage.UsageError("--log-format must be 'text' or 'json'")
    if options["log-max-bytes"] < 4096:
        raise usage.UsageError("--log-max-bytes must be at least 4096")
    if not 1 <= options["log-max-files"] <= 1000:
        raise usage.UsageError("--log-max-files must be 1..1000")
    if options["mail-queue-max"] < 1:
        raise usage.UsageError("--mail-queue-max must be at least 1")


def _one_line_usage_error(options: usage.Options, error: usage.UsageError) -> None:
    """Under twistd: print the mistake as one line and exit 1 (not twistd's usage dump)."""
    text = str(error).removeprefix("Parameter type enforcement failed: ")
    sys.stderr.write(f"twistd messenger: {text}"
                     " ('twistd messenger --help' lists every option)\n")
    sys.stderr.flush()
    raise SystemExit(1)


class _ServerRoot(service.MultiService):
    """The top service; when twistd attaches it to its application, it hands twistd the
    log observer for ``--log-format`` and the bounded log rotation."""

    def __init__(self, observer: ILogObserver | None) -> None:
        super().__init__()
        self.observer = observer

    def setServiceParent(self, parent: Any) -> Any:  # noqa: N802
        if self.observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.observer)
        return super().setServiceParent(parent)


def _suites(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SUITES]
    if unknown or not chosen:
        raise ValueError(f"unknown cipher suite(s): {', '.join(unknown) or '(none)'};"
                         f" choose from {', '.join(SUITES)}")
    return chosen


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run the Messenger server: encrypted JIM over TCP (and optionally TLS), "
                "with voice-call relay over UDP. Data (SQLite, keys, secret, Maildir) "
                "lives in --data-dir.")

    optFlags = FLAGS
    optParameters = PARAMETERS
    optParameters = _with_named_coercions(optParameters)

    def parseOptions(self, options: list[str] | None = None) -> None:
        import sys
        argv = list(sys.argv[1:] if options is None else options)
        try:
            path = self._find_config(argv)
            if path is not None:
                self._load_config(path)
            super().parseOptions(argv)
        except usage.UsageError as error:
            if self.parent is None:
                raise
            _one_line_usage_error(self, error)

    @staticmethod
    def _find_config(argv: list[str]) -> str | None:
        for index, arg in enumerate(argv):
            if arg == "--":
                break
            if arg in ("--config", "-c") and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith("--config="):
                return arg.split("=", 1)[1]
            if arg.startswith("-c") and not arg.startswith("--") and len(arg) > 2:
                return arg[2:]
        return None

    def _load_config(self, path: str) -> None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            if not parser.read(path, encoding="utf-8"):
                raise usage.UsageError(f"cannot read config file {path}")
        except (configparser.Error, UnicodeDecodeError) as error:
            raise usage.UsageError(f"config file {path} is not a valid INI file:"
                                   f" {error}") from None
        if not parser.has_section("messenger"):
            raise usage.UsageError(f"{path} has no [messenger] section")
        flags = {name for name, *_ in self.optFlags}
        params = {entry[0]: entry for entry in self.optParameters}
        for raw_key, value in parser.items("messenger"):
            key = raw_key.replace("_", "-")
            if key in flags:
                try:
                    self[key] = 1 if parser.getboolean("messenger", raw_key) else 0
                except ValueError:
                    raise usage.UsageError(f"{path}: {key} must be yes or no, not"
                                           f" {value!r}") from None
            elif key in params and key != "config":
                coerce = params[key][4] if len(params[key]) > 4 else None
                try:
                    self[key] = coerce(value) if coerce else value
                except ValueError:
                    raise usage.UsageError(f"{path}: bad value for {key}: {value!r}") from None
            else:
                raise usage.UsageError(f"{path}: unknown option {raw_key!r}")

    def postOptions(self) -> None:
        try:
            _suites(self["cipher"])
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        if self["db-sync"].lower() not in ("full", "normal"):
            raise usage.UsageError("--db-sync must be 'full' or 'normal'")
        self["db-sync"] = self["db-sync"].lower()
        if not 0 <= self["commit-window"] <= 100:
            raise usage.UsageError("--commit-window must be 0 to 100 milliseconds")
        self._check_database()
        self._check_cluster()
        for name in ("port", "tls-port", "udp-port"):
            if self[name] is not None and not 0 <= self[name] <= 65535:
                raise usage.UsageError(f"--{name} must be 0..65535")
        if self["relay-tcp-port"] is not None and not -1 <= self["relay-tcp-port"] <= 65535:
            raise usage.UsageError("--relay-tcp-port must be -1..65535")
        if not 1 <= self["smtp-port"] <= 65535:
            raise usage.UsageError("--smtp-port must be 1..65535")
        if self["rsa-bits"] not in RSA_SIZES:
            raise usage.UsageError("--rsa-bits must be 2048, 3072 or 4096")
        if not 1 <= self["max-body"] <= MAX_BODY_LIMIT:
            raise usage.UsageError(f"--max-body must be 1..{MAX_BODY_LIMIT} bytes")
        smallest = 6 * self["max-body"] + 1024  # a body of control characters, escaped
        if not smallest <= self["max-frame"] <= MAX_FRAME_LIMIT:
            raise usage.UsageError(f"--max-frame must be {smallest}..{MAX_FRAME_LIMIT} bytes"
                                   " (at least six times --max-body: JSON escapes a"
                                   " control character into six bytes)")
        if self["max-queued-bytes"] < MIB:
            raise usage.UsageError("--max-queued-bytes must be at least 1 MiB (one reply)")
        for name in _AT_LEAST_ONE:
            if self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        for name in _POSITIVE:
            if not (math.isfinite(self[name]) and self[name] > 0):
                raise usage.UsageError(f"--{name} must be a positive number")
        for name in _NOT_NEGATIVE:
            if not (math.isfinite(self[name]) and self[name] >= 0):
                raise usage.UsageError(f"--{name} must not be negative")
        if not 1 <= self["max-group-name"] <= jim.GROUP_NAME_MAX:
            raise usage.UsageError(f"--max-group-name must be 1..{jim.GROUP_NAME_MAX}")
        if not 0 <= self["max-group-topic"] <= jim.GROUP_TOPIC_MAX:
            raise usage.UsageError(f"--max-group-topic must be 0..{jim.GROUP_TOPIC_MAX}")
        if self["max-file-mib"] > MAX_FILE_MIB or self["file-quota-mib"] > MAX_FILE_MIB:
            raise usage.UsageError(f"--max-file-mib and --file-quota-mib must be at most"
                                   f" {MAX_FILE_MIB}")
        if not 0 <= self["new-location-prefix"] <= 32:
            raise usage.UsageError("--new-location-prefix must be 0..32")
        if self["tls-port"] and not (self["tls-cert"] and self["tls-key"]):
            raise usage.UsageError("--tls-port needs --tls-cert and --tls-key"
                                   " (messenger-admin gen-cert HOST makes them)")
        n = self["scrypt-n"]
        floor = 2 if os.environ.get(WEAK_HASHING_ENV) == "1" else MIN_SCRYPT_N
        if n < floor or n & (n - 1) or n > MAX_SCRYPT_N:
            raise usage.UsageError(f"--scrypt-n must be a power of two, {floor}.."
                                   f"{MAX_SCRYPT_N}")
        try:
            split_sender(self["mail-from"])
        except ValueError as error:
            raise usage.UsageError(f"--mail-from is not a usable address: {error}") from None
        _check_ops(self)
        self.config = self.to_config()

    def _check_database(self) -> None:
        for name in ("db-readers", "db-writers"):
            if not 1 <= self[name] <= 64:
                raise usage.UsageError(f"--{name} must be 1..64")
        if is_postgres_url(self["database"]):
            from messenger.store.postgres import parse
            try:
                parse(self["database"])
            except ValueError as error:
                raise usage.UsageError(f"--database: {error}") from None
        elif "://" in self["database"]:
            raise usage.UsageError("--database takes a SQLite file or a postgresql:// URL")

    def _check_cluster(self) -> None:
        from messenger.server.cluster import settings
        try:
            if self["relay-address"]:
                settings.parse_host_port(self["relay-address"])
            if self["node-name"]:
                settings.check_node_name(self["node-name"])
            if not self["redis"]:
                if self["node-name"]:
                    raise ValueError("--node-name needs --redis (cluster mode)")
                return
            settings.parse_redis_url(self["redis"])
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        if not is_postgres_url(self["database"]):
            raise usage.UsageError("--redis (cluster mode) needs a shared postgresql://"
                                   " --database: every node reads and writes one store")

    def _cluster_config(self) -> ClusterConfig:
        from messenger.server.cluster import settings
        name = self["node-name"]
        if self["redis"] and not name:
            name = settings.default_node_name(self["port"])
        return ClusterConfig(redis=self["redis"], node_name=name,
                             relay_address=self["relay-address"])

    def _smtp_password(self) -> str:
        path = self["smtp-password-file"]
        if not path:
            return ""
        try:
            return Path(path).read_text("utf-8").strip()
        except OSError as error:
            raise usage.UsageError(f"cannot read --smtp-password-file: {error}") from None

    def _mail_config(self) -> MailConfig:
        return MailConfig(relay_host=self["smtp-host"], relay_port=self["smtp-port"],
                          starttls=bool(self["smtp-starttls"]), username=self["smtp-user"],
                          password=self._smtp_password(), from_address=self["mail-from"],
                          relay_ca_file=self["smtp-ca-file"],
                          relay_timeout=self["smtp-timeout"],
                          give_up_after=self["mail-give-up-days"] * 24 * 3600,
                          server_name=self["server-name"],
                          new_location_prefix=self["new-location-prefix"],
                          queue_max=self["mail-queue-max"])

    def _limits_config(self) -> LimitsConfig:
        minute = 60.0
        return LimitsConfig(
            connections_per_minute=self["connections-per-minute"],
            connections_per_minute_network=self["connections-per-minute-network"],
            max_connections_per_host=self["max-connections-per-host"],
            max_connections_per_network=self["max-connections-per-network"],
            max_connections=self["max-connections"],
            logins_per_minute=self["logins-per-minute"],
            logins_per_minute_network=self["logins-per-minute-network"],
            crypto_ops_per_second=self["crypto-ops-per-second"],
            bad_requests_per_second=self["bad-requests-per-second"],
            hash_queue=self["hash-queue"],
            decoy_queue=self["decoy-queue"],
            db_queue=self["db-queue"],
            max_contacts=self["max-contacts"],
            max_group_members=self["max-group-members"],
            max_groups_per_user=self["max-groups-per-user"],
            max_group_name=self["max-group-name"],
            max_group_topic=self["max-group-topic"],
            stored_bytes_per_day=int(self["stored-mib-per-day"] * MIB),
            requests_per_second=self["requests-per-second"],
            request_burst=self["request-burst"],
            lockout_failures=self["lockout-failures"],
            lockout_window=self["lockout-window"] * minute,
            lockout_duration=self["lockout-duration"] * minute)

    def to_config(self) -> ServerConfig:
        return ServerConfig(
            port=self["port"],
            interface=self["interface"],
            data_dir=Path(self["data-dir"]),
            secret_file=Path(self["secret-file"]) if self["secret-file"] else None,
            max_frame=self["max-frame"],
            max_queued_bytes=self["max-queued-bytes"],
            retention_days=self["retention-days"],
            edit_window=self["edit-window"] * 3600,
            suites=_suites(self["cipher"]),
            auto_register=bool(self["auto-register"]),
            rsa_bits=self["rsa-bits"],
            max_body=self["max-body"],
            handshake_timeout=self["handshake-timeout"],
            login_timeout=self["login-timeout"],
            probe_interval=self["probe-interval"],
            probe_timeout=self["probe-timeout"],
            token_lifetime=self["token-days"] * 24 * 3600,
            scrypt_n=self["scrypt-n"],
            udp_port=self["udp-port"],
            relay_tcp_port=self["relay-tcp-port"],
            call_ring_timeout=self["ring-timeout"],
            public_host=self["public-host"],
            persist=not self["no-persist"],
            db_sync=self["db-sync"],
            commit_window=self["commit-window"] / 1000.0,
            database=self["database"],
            db_readers=self["db-readers"],
            db_writers=self["db-writers"],
            mail=self._mail_config(),
            limits=self._limits_config(),
            files=FilesConfig(directory=self["files-dir"],
                              quota=int(self["file-quota-mib"] * MIB),
                              max_size=int(self["max-file-mib"] * MIB),
                              upload_expiry=self["upload-expiry-hours"] * 3600,
                              unposted_grace=self["unposted-file-hours"] * 3600,
                              io_threads=self["file-io-threads"]),
            tls=TlsConfig(port=self["tls-port"], cert=self["tls-cert"], key=self["tls-key"]),
            cluster=self._cluster_config(),
            metrics_port=self["metrics-port"],
            metrics_interface=self["metrics-interface"],
        )


def makeService(options: Any) -> service.IService:
    from messenger.server.service import MessengerService
    observer = None
    if getattr(options, "parent", None) is not None:      # run by twistd
        try:
            observer = log_output.observer_for_twistd(
                options.parent, options["log-format"], options["log-max-bytes"],
                options["log-max-files"])
        except OSError as error:
            _one_line_usage_error(options, usage.UsageError(
                f"--logfile {error.filename}: cannot open it ({error.strerror}); create its"
                " directory and let the server's user write there"))
    top = _ServerRoot(observer)
    MessengerService(options.config, exit_on_failure=options.parent is not None
                     ).setServiceParent(top)
    return top
