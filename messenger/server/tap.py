"""``twistd messenger``: command-line and config-file options, and the service they make.

Every option can also be set in an INI file given with ``--config FILE``: a
``[messenger]`` section whose keys are the long option names (``data-dir = /srv/m``;
flags take yes/no). The command line wins over the file.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.python import usage

from messenger.server.config import LimitsConfig, MailConfig, ServerConfig, TlsConfig
from messenger.wire.suites import SUITES

MIB = 1024 * 1024


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

    optFlags = [
        ["auto-register", None, "Create an account when an unknown name logs in with a"
                                " password (classic JIM behaviour)."],
        ["no-persist", None, "Benchmarks only: do not store messages (no offline delivery,"
                             " no history)."],
        ["smtp-starttls", None, "Require STARTTLS with the SMTP relay."],
    ]

    optParameters = [
        ["config", "c", None, "INI file with a [messenger] section of these options."],
        ["port", "p", 7777, "TCP port for clients.", int],
        ["interface", None, "", "Address to listen on (default: all)."],
        ["data-dir", "d", "var", "Directory for the database, keys, secret and mail."],
        ["secret-file", None, None, "Shared-secret file (default: DATA_DIR/secret); created"
                                    " with a random secret, mode 0600, when absent."],
        ["max-frame", None, MIB, "Largest frame accepted, in bytes.", int],
        ["cipher", None, ",".join(SUITES), "Cipher suites offered, in order of preference"
                                           " (aes-256-gcm, rsa-oaep)."],
        ["rsa-bits", None, 3072, "Size of the server's RSA key when one is generated"
                                 " (2048 or 3072).", int],
        ["max-body", None, 16 * 1024, "Largest message or broadcast body, in bytes.", int],
        ["handshake-timeout", None, 10.0, "Seconds allowed for each handshake phase.", float],
        ["login-timeout", None, 60.0, "Seconds allowed between handshake and login.", float],
        ["probe-interval", None, 30.0, "Seconds of silence before the server probes.", float],
        ["probe-timeout", None, 15.0, "Seconds to answer a probe before being dropped.",
         float],
        ["token-days", None, 30.0, "Lifetime of a resume token, in days.", float],
        ["scrypt-n", None, 2**15, "scrypt cost parameter N for password hashes.", int],
        ["udp-port", None, None, "UDP port of the call relay (default: the TCP port).", int],
        ["public-host", None, "", "Host name or address clients use to reach the relay."],
        ["ring-timeout", None, 45.0, "Seconds an unanswered call rings.", float],
        ["tls-port", None, 0, "Also listen with TLS on this port (0: no TLS).", int],
        ["tls-cert", None, "", "PEM certificate for the TLS listener."],
        ["tls-key", None, "", "PEM private key for the TLS listener."],
        ["smtp-host", None, "", "SMTP relay host (empty: deliver into DATA_DIR/Maildir)."],
        ["smtp-port", None, 25, "SMTP relay port.", int],
        ["smtp-user", None, "", "SMTP login name."],
        ["smtp-password-file", None, "", "File holding the SMTP password (kept out of ps)."],
        ["smtp-ca-file", None, "", "PEM CA file to verify the relay's STARTTLS certificate"
                                   " (default: the system trust store)."],
        ["smtp-timeout", None, 60.0, "Seconds to connect to the relay / wait for a reply.",
         float],
        ["mail-give-up-days", None, 5.0, "Days of temporary failures before a mail is moved"
                                         " to the failed folder (0: never).", float],
        ["server-name", None, "Messenger", "How the e-mails name this server."],
        ["mail-from", None, "messenger@localhost", "From address of e-mails."],
        ["new-location-prefix", None, 32, "IPv4 prefix length that counts as the same"
                                          " location (32: exact address).", int],
        ["connections-per-minute", None, 60, "New connections per source address.", int],
        ["logins-per-minute", None, 20, "Login attempts per source address.", int],
        ["requests-per-second", None, 50.0, "Sustained requests per connection.", float],
        ["request-burst", None, 200, "Burst of requests per connection.", int],
        ["lockout-failures", None, 5, "Failed logins that lock an account ...", int],
        ["lockout-window", None, 15.0, "... within this many minutes ...", float],
        ["lockout-duration", None, 15.0, "... for this many minutes.", float],
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:
        import sys
        argv = list(sys.argv[1:] if options is None else options)
        path = self._find_config(argv)
        if path is not None:
            self._load_config(path)
        super().parseOptions(argv)

    @staticmethod
    def _find_config(argv: list[str]) -> str | None:
        for index, arg in enumerate(argv):
            if arg in ("--config", "-c") and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith("--config="):
                return arg.split("=", 1)[1]
        return None

    def _load_config(self, path: str) -> None:
        parser = configparser.ConfigParser()
        if not parser.read(path, encoding="utf-8"):
            raise usage.UsageError(f"cannot read config file {path}")
        if not parser.has_section("messenger"):
            raise usage.UsageError(f"{path} has no [messenger] section")
        flags = {name for name, *_ in self.optFlags}
        params = {entry[0]: entry for entry in self.optParameters}
        for key, value in parser.items("messenger"):
            if key in flags:
                self[key] = 1 if parser.getboolean("messenger", key) else 0
            elif key in params:
                coerce = params[key][4] if len(params[key]) > 4 else None
                try:
                    self[key] = coerce(value) if coerce else value
                except ValueError:
                    raise usage.UsageError(f"{path}: bad value for {key}: {value!r}") from None
            else:
                raise usage.UsageError(f"{path}: unknown option {key!r}")

    def postOptions(self) -> None:
        try:
            suites = _suites(self["cipher"])
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        if not 1 <= self["port"] <= 65535:
            raise usage.UsageError("--port must be 1..65535")
        if self["rsa-bits"] not in (2048, 3072):
            raise usage.UsageError("--rsa-bits must be 2048 or 3072")
        if self["max-frame"] < 4096:
            raise usage.UsageError("--max-frame must be at least 4096")
        if self["tls-port"] and not (self["tls-cert"] and self["tls-key"]):
            raise usage.UsageError("--tls-port needs --tls-cert and --tls-key"
                                   " (messenger-admin gen-cert HOST makes them)")
        n = self["scrypt-n"]
        if n < 2 or n & (n - 1):
            raise usage.UsageError("--scrypt-n must be a power of two")
        self.config = self.to_config()

    def _smtp_password(self) -> str:
        path = self["smtp-password-file"]
        if not path:
            return ""
        try:
            return Path(path).read_text("utf-8").strip()
        except OSError as error:
            raise usage.UsageError(f"cannot read --smtp-password-file: {error}") from None

    def to_config(self) -> ServerConfig:
        minute = 60.0
        return ServerConfig(
            port=self["port"],
            interface=self["interface"],
            data_dir=Path(self["data-dir"]),
            secret_file=Path(self["secret-file"]) if self["secret-file"] else None,
            max_frame=self["max-frame"],
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
            call_ring_timeout=self["ring-timeout"],
            public_host=self["public-host"],
            persist=not self["no-persist"],
            mail=MailConfig(relay_host=self["smtp-host"], relay_port=self["smtp-port"],
                            starttls=bool(self["smtp-starttls"]), username=self["smtp-user"],
                            password=self._smtp_password(), from_address=self["mail-from"],
                            relay_ca_file=self["smtp-ca-file"],
                            relay_timeout=self["smtp-timeout"],
                            give_up_after=self["mail-give-up-days"] * 24 * 3600,
                            server_name=self["server-name"],
                            new_location_prefix=self["new-location-prefix"]),
            limits=LimitsConfig(
                connections_per_minute=self["connections-per-minute"],
                logins_per_minute=self["logins-per-minute"],
                requests_per_second=self["requests-per-second"],
                request_burst=self["request-burst"],
                lockout_failures=self["lockout-failures"],
                lockout_window=self["lockout-window"] * minute,
                lockout_duration=self["lockout-duration"] * minute),
            tls=TlsConfig(port=self["tls-port"], cert=self["tls-cert"], key=self["tls-key"]),
        )


def makeService(options: Any) -> service.IService:
    from messenger.server.service import MessengerService
    top = service.MultiService()
    MessengerService(options.config).setServiceParent(top)
    return top
