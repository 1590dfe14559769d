"""messenger-cli: a terminal client for headless use and scripts, on the client core.

    messenger-cli [--server HOST:PORT] [--secret-file FILE] [--tls [--ca-file F |
                  --pin-cert F]] [--accept-new-key] [--json] COMMAND ...

Commands: register, login, logout, contacts, add, remove, search, send, history,
broadcast, broadcasts, presence, chat, tail. ``login``/``register`` save a resume token
in the config dir; every other command logs in with it and quits when done. Passwords
come from ``--password-file``, ``$MESSENGER_PASSWORD`` or a prompt, never from the
command line.

Output is one line per item (``--json``: one JSON object per line). Errors are one line on
stderr, and the exit status says what kind of failure it was (`EXIT_*`).

`options` reads the command line and the settings, `output` prints, `commands` runs one
command, `follow` the two that stay connected (``tail`` and ``chat``).
"""

from messenger.client.cli.commands import main
from messenger.client.cli.options import (
    EXIT_CONNECTION,
    EXIT_LOGIN,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    PROG,
    CliError,
    Settings,
    build_parser,
    read_password,
)
from messenger.client.cli.output import Output, event_json, explain, format_event

__all__ = [
    "EXIT_CONNECTION", "EXIT_LOGIN", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "PROG",
    "CliError", "Output", "Settings", "build_parser", "event_json", "explain",
    "format_event", "main", "read_password",
]
