"""The client core behind the desktop, made from the connection settings: the
`MessengerClient`, its `ClientBridge`, the `Conversations` (made here, before any window,
so that nothing the first sync brings is missed) and the call controller. A mixin of
`Desktop`; a change of server settings makes them all again (the old client is stopped
and its files written first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer

from messenger.client.calls.controller import CallController
from messenger.client.calls.engine import CallEngine
from messenger.client.core import MessengerClient
from messenger.client.tls import client_tls_options
from messenger.client.ui.bridge import CallBridge, ClientBridge
from messenger.client.ui.chat_state import ChatStateFile, load_chat_state
from messenger.client.ui.conversations import Conversations
from messenger.client.ui.settings import DesktopSettings, SettingsProblem, read_secret


def _read_files(secret_file: str, config_dir: Path) -> tuple[bytes, ChatStateFile]:
    """The shared secret and the chat list's state (blocking: in a thread)."""
    return read_secret(secret_file), load_chat_state(config_dir)


class ClientSessionMixin:
    settings: DesktopSettings
    config_dir: Path
    reactor: Any
    client_options: dict[str, Any]
    accept_new_key: bool
    notifier: Any
    log: Any
    _run: Any
    _engine_factory: Any

    def init_session(self) -> None:
        self.client: MessengerClient | None = None
        self.bridge: ClientBridge | None = None
        self.conversations: Conversations | None = None
        self.calls: CallController | None = None
        self.call_bridge: CallBridge | None = None
        self._client_settings: DesktopSettings | None = None

    def _on_state(self, state: Any) -> None:
        raise NotImplementedError

    def _ensure_client(self) -> defer.Deferred[MessengerClient]:
        """The client for the current connection settings (made again when they changed;
        the old one is stopped, its files written, before the new one starts)."""
        settings = self.settings
        if self.client is not None and self._client_settings is not None and (
                self._client_settings.connection == settings.connection):
            self.client.accept_new_key = self.accept_new_key
            return defer.succeed(self.client)
        d = self._drop_client()
        d.addErrback(lambda failure: self.log.failure("Stopping the old client", failure))
        d.addCallback(lambda _: self._run(_read_files, settings.secret_file, self.config_dir))
        d.addCallback(lambda files: self._make_client(*files, settings))
        return d

    def _make_client(self, secret: bytes, chat_state: ChatStateFile,
                     settings: DesktopSettings) -> MessengerClient:
        if self.client is not None and self._client_settings is not None and (
                self._client_settings.connection == settings.connection):
            return self.client                    # made meanwhile by another attempt
        self._drop_client()
        try:
            host, port = settings.host_port
        except ValueError:
            raise SettingsProblem("The server address cannot be used. Write it as host:port"
                                " (for example chat.example.org:7777) in Server"
                                " settings.") from None
        tls = None
        if settings.tls:
            tls = client_tls_options(host, settings.ca_file or None,
                                     settings.pin_cert or None)
        client = MessengerClient(host, port, secret, config_dir=self.config_dir, tls=tls,
                                 accept_new_key=self.accept_new_key,
                                 reactor=self.reactor, **self.client_options)
        self.client = client
        self._client_settings = settings
        self.bridge = ClientBridge(client, self)
        self.bridge.state.connect(self._on_state)
        self.conversations = Conversations(client, self.bridge, chat_state, self.notifier,
                                           self.reactor, self._run, self)
        self.calls = CallController(client, self._make_engine, self.reactor)
        self.use_devices()
        self.call_bridge = CallBridge(self.calls, self)
        return client

    def use_devices(self) -> None:
        """The sound devices chosen in Settings, for the calls from now on."""
        if self.calls is not None and (self.settings.input_device
                                       or self.settings.output_device):
            self.calls.set_devices(self.settings.input_device or None,
                                   self.settings.output_device or None)

    def _make_engine(self, **callbacks: Any) -> Any:
        if self._engine_factory is not None:
            return self._engine_factory(**callbacks)
        return CallEngine(self.reactor, **callbacks)

    def _drop_client(self) -> defer.Deferred[Any]:
        client, self.client = self.client, None
        self._client_settings = None
        if self.bridge is not None:
            self.bridge.detach()
            self.bridge = None
        if self.call_bridge is not None:
            self.call_bridge.detach()
            self.call_bridge = None
        if self.calls is not None:
            self.calls.close()
            self.calls = None
        conversations, self.conversations = self.conversations, None
        d = client.stop() if client is not None else defer.succeed(None)
        if conversations is not None:
            d.addBoth(lambda result: conversations.close().addBoth(lambda _: result))
        return d

