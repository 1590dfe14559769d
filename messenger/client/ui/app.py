"""messenger-client: the PyQt5 desktop client.

    messenger-client [--server HOST:PORT] [--secret-file FILE] [--tls [--ca-file F |
                     --pin-cert F]] [--accept-new-key] [--config-dir DIR]
                     [--input-device D] [--output-device D]

The QApplication comes first, then qt5reactor (its README's order), then the windows;
the client core starts from ``callLater(0, ...)`` once the loop runs, and a ``before
shutdown`` trigger says ``quit`` to the server and hangs up (the gridsync pattern).
Options override the settings saved from the last run (``desktop.json`` in the config
dir), and what works is saved again; the settings dialog changes them too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from messenger.client.credentials import default_config_dir
from messenger.client.known_servers import parse_address
from messenger.client.ui.settings import DesktopSettings, load_settings

PROG = "messenger-client"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Messenger desktop client. Without options it uses the"
        " settings of the last run (change them in the login window's Server settings).")
    parser.add_argument("--server", metavar="HOST:PORT", help="server address")
    parser.add_argument("--secret-file", metavar="FILE",
                        help="the deployment's shared-secret file (from the administrator)")
    parser.add_argument("--tls", action="store_true", default=None,
                        help="connect with TLS (to the server's TLS port)")
    parser.add_argument("--no-tls", dest="tls", action="store_false",
                        help="connect without TLS")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", metavar="FILE", help="TLS: trust these CA certificates")
    trust.add_argument("--pin-cert", metavar="FILE",
                       help="TLS: trust exactly this server certificate")
    parser.add_argument("--accept-new-key", action="store_true",
                        help="trust the server's key even if another one is pinned (after"
                        " checking its fingerprint with the administrator)")
    parser.add_argument("--config-dir", metavar="DIR",
                        help="where the key, tokens, pins and settings live (default:"
                        " $XDG_CONFIG_HOME/messenger)")
    parser.add_argument("--input-device", metavar="DEVICE",
                        help="microphone for calls (PortAudio index or name part)")
    parser.add_argument("--output-device", metavar="DEVICE",
                        help="loudspeaker for calls (PortAudio index or name part)")
    return parser


def settings_from(args: argparse.Namespace, saved: DesktopSettings) -> DesktopSettings:
    """The saved settings with the command line's on top."""
    changes: dict[str, Any] = {}
    if args.server:
        changes["server"] = args.server
    if args.secret_file:
        changes["secret_file"] = str(Path(args.secret_file).expanduser().resolve())
    if args.tls is not None:
        changes["tls"] = args.tls
    if args.ca_file:
        changes.update(ca_file=args.ca_file, pin_cert="")
    if args.pin_cert:
        changes.update(pin_cert=args.pin_cert, ca_file="")
    return saved.with_changes(**changes)


def _device(value: str | None) -> Any:
    if not value:
        return None
    return int(value) if value.isdigit() else value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.server:
        try:
            parse_address(args.server)
        except ValueError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return 2

    from messenger.client.ui import qtreactor, style
    app = qtreactor.application()
    reactor = qtreactor.install()
    style.apply(app)
    app.setQuitOnLastWindowClosed(False)        # the reactor decides when we are done

    from messenger.client.calls.engine import CallEngine
    from messenger.client.ui.desktop import Desktop

    config_dir = Path(args.config_dir).expanduser() if args.config_dir else \
        default_config_dir()
    saved = load_settings(config_dir)                     # before the loop runs
    settings = settings_from(args, saved)
    if not settings.secret_file and (config_dir / "secret").exists():
        settings = settings.with_changes(secret_file=str(config_dir / "secret"))
    input_device, output_device = _device(args.input_device), _device(args.output_device)

    def engine(**callbacks: Any) -> CallEngine:
        """The devices of the command line (those chosen in Settings, or in the call
        window, are set on the engine by the call controller)."""
        return CallEngine(reactor, input_device=input_device, output_device=output_device,
                          **callbacks)

    desktop = Desktop(config_dir, settings, reactor=reactor, engine_factory=engine,
                      accept_new_key=args.accept_new_key)
    desktop.quit_on_close = True
    desktop.quit_requested.connect(lambda: reactor.stop() if reactor.running else None)
    reactor.addSystemEventTrigger("before", "shutdown", desktop.shutdown)
    if settings != saved:
        reactor.callLater(0, desktop.save_settings)       # what the options said, kept
    reactor.callLater(0, desktop.start)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
