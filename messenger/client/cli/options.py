"""messenger-cli's command line and settings: the parser, where the server, the secret
and the password come from, and the exit statuses."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from messenger.client.credentials import CredentialStore, Sessions
from messenger.client.known_servers import format_address, parse_address
from messenger.client.tls import TlsSettingsError, client_tls_options

PROG = "messenger-cli"
DEFAULT_SERVER = "localhost:7777"

EXIT_OK = 0
EXIT_REFUSED = 1        # the server refused the request (wrong password, no such user, ...)
EXIT_USAGE = 2          # bad command line or settings
EXIT_CONNECTION = 3     # cannot connect, handshake failed (hmac error), server key changed
EXIT_LOGIN = 4          # not logged in: no saved token, or it expired


class CliError(Exception):
    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- command line -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Messenger from the terminal: log in once, then send, read"
        " and follow messages from scripts.",
        epilog="Exit status: 0 ok, 1 refused by the server, 2 usage, 3 connection or"
        " handshake failure (hmac error, server key changed), 4 login needed.")
    parser.add_argument("--server", metavar="HOST:PORT",
                        help="server address (default: $MESSENGER_SERVER, else the last"
                        f" one logged in to, else {DEFAULT_SERVER})")
    parser.add_argument("--secret-file", metavar="FILE",
                        help="the deployment's shared-secret file (default:"
                        " $MESSENGER_SECRET_FILE, else the one last used with this server,"
                        " else CONFIG_DIR/secret)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", metavar="FILE",
                       help="TLS: trust the CA certificates in this PEM file")
    trust.add_argument("--pin-cert", metavar="FILE",
                       help="TLS: trust exactly this server certificate (PEM)")
    parser.add_argument("--accept-new-key", action="store_true",
                        help="trust the server's key even if another one is pinned, and pin"
                        " it, for this run's first connection only (after checking its"
                        " fingerprint with the administrator)")
    parser.add_argument("--config-dir", metavar="DIR",
                        help="where the key, tokens and pins live (default:"
                        " $XDG_CONFIG_HOME/messenger)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up on the server after this long (default 30)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    _add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def _add_commands(commands: Any) -> None:

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text)

    for name, text in (("register", "create an account and log in to it"),
                       ("login", "log in with a password and remember the login")):
        sub = command(name, text)
        sub.add_argument("account_name", metavar="NAME")
        if name == "register":
            sub.add_argument("--email", required=True)
            sub.add_argument("--premium-code", metavar="CODE")
        sub.add_argument("--password-file", metavar="FILE",
                         help="read the password from this file (else $MESSENGER_PASSWORD,"
                         " else a prompt)")
        sub.add_argument("--no-remember", dest="remember", action="store_false",
                         help="do not keep a resume token (check the password only)")
    command("logout", "log out and delete the saved token")
    command("contacts", "list contacts with their presence")
    command("add", "add a contact").add_argument("account_name", metavar="NAME")
    command("remove", "remove a contact").add_argument("account_name", metavar="NAME")
    command("search", "find people by name").add_argument("query")
    sub = command("send", "send a message")
    sub.add_argument("to", metavar="USER")
    sub.add_argument("text", nargs="+", metavar="TEXT")
    sub.add_argument("--reply-to", type=int, metavar="MSG_ID",
                     help="quote an earlier message of the conversation")
    sub = command("send-file", "send a file (images with a preview); prints the file id")
    sub.add_argument("to", metavar="USER")
    sub.add_argument("path", metavar="PATH")
    sub.add_argument("--caption", metavar="TEXT", help="text of the message with the file")
    sub = command("download", "download a file sent to you (into PATH, a file or a folder)")
    sub.add_argument("file_id", type=int, metavar="FILE_ID")
    sub.add_argument("path", metavar="PATH")
    sub = command("history", "show the conversation with someone")
    sub.add_argument("with_user", metavar="USER")
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--before", type=int, metavar="MSG_ID")
    command("broadcast", "post to everyone (premium accounts)").add_argument(
        "text", nargs="+", metavar="TEXT")
    command("broadcasts", "show recent broadcasts").add_argument("--limit", type=int,
                                                                 default=20)
    command("presence", "set your presence").add_argument("status",
                                                          choices=("online", "away"))
    command("chat", "talk to someone: send each line typed, print what comes, stay"
            " connected").add_argument("to", metavar="USER")
    sub = command("tail", "print messages and other events as they come, until"
                  " interrupted")
    sub.add_argument("--count", type=int, metavar="N",
                     help="exit after printing N messages")
    from messenger.client.cli import edits, groups, receipts
    groups.add_parser(commands)
    receipts.add_parser(commands)
    edits.add_parsers(command)


# -- settings -----------------------------------------------------------------------------

class Settings:
    """The command line resolved against the environment and the saved state."""

    def __init__(self, args: argparse.Namespace, environ: dict[str, str]) -> None:
        self.args = args
        self.store = CredentialStore(Path(args.config_dir) if args.config_dir else None)
        self.sessions = self.store.load_sessions()
        server = args.server or environ.get("MESSENGER_SERVER") or (
            self.sessions.default_server) or DEFAULT_SERVER
        try:
            self.host, self.port = parse_address(server)
        except ValueError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        self.address = format_address(self.host, self.port)
        self.secret_file = self._secret_file(environ)
        self.secret = self._read_secret()
        self.tls = None
        if args.tls:
            try:
                self.tls = client_tls_options(self.host, args.ca_file, args.pin_cert)
            except TlsSettingsError as error:
                raise CliError(str(error), EXIT_USAGE) from None
        elif args.ca_file or args.pin_cert:
            raise CliError("--ca-file and --pin-cert need --tls", EXIT_USAGE)

    def _secret_file(self, environ: dict[str, str]) -> Path:
        record = self.sessions.servers.get(self.address)
        for candidate in (self.args.secret_file, environ.get("MESSENGER_SECRET_FILE"),
                          record.secret_file if record else None):
            if candidate:
                return Path(candidate).expanduser()
        return self.store.config_dir / "secret"

    def _read_secret(self) -> bytes:
        try:
            secret = self.secret_file.read_bytes().strip()
        except FileNotFoundError:
            raise CliError(f"no shared-secret file at {self.secret_file}: give --secret-file"
                           " (the server administrator has it)", EXIT_USAGE) from None
        except OSError as error:
            raise CliError(f"cannot read {self.secret_file}: {error.strerror}",
                           EXIT_USAGE) from None
        if not secret:
            raise CliError(f"the shared-secret file {self.secret_file} is empty",
                           EXIT_USAGE)
        return secret

    def remember_secret_file(self) -> None:
        """Note which secret file this server uses (after the client wrote its state)."""
        sessions: Sessions = self.store.load_sessions()
        sessions.server(self.address).secret_file = str(self.secret_file.resolve())
        self.store.save_sessions(sessions)


def read_password(args: argparse.Namespace, environ: dict[str, str],
                  prompt: Callable[[str], str] = getpass.getpass) -> str:
    if args.password_file:
        try:
            text = Path(args.password_file).read_text("utf-8")
        except OSError as error:
            raise CliError(f"cannot read {args.password_file}: {error.strerror}",
                           EXIT_USAGE) from None
        return text.rstrip("\r\n")
    if environ.get("MESSENGER_PASSWORD"):
        return environ["MESSENGER_PASSWORD"]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return prompt("Password: ")
