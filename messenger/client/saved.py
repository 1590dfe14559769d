"""The config dir as the reactor thread sees it.

`SavedState` loads the client key (made once), ``sessions.json`` and ``known_servers``
through ``run_blocking`` (a thread by default), keeps them in memory, and writes changes
back off the reactor thread: the reactor thread renders the new bytes (cheap), a thread
writes them (``write_private_file``: temporary file, fsync, rename, mode 0600). All file
work runs one job at a time, in order, so a re-read of the pins cannot overtake the write
of a pin made just before. Tokens live only here and in the file; passwords never do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.client.credentials import (
    AccountRecord,
    CredentialStore,
    Sessions,
    render_sessions,
    write_private_file,
)
from messenger.client.known_servers import KnownServers

RunBlocking = Callable[..., defer.Deferred]


class SavedState:
    log = Logger()

    def __init__(self, store: CredentialStore, run_blocking: RunBlocking,
                 client_key: rsa.RSAPrivateKey | None = None) -> None:
        self.store = store
        self.known = KnownServers(store.known_servers_path)
        self.sessions: Sessions | None = None
        self.client_key = client_key
        self._run = run_blocking
        self._key_loading: defer.Deferred | None = None
        self._writes: defer.Deferred = defer.succeed(None)

    # -- loading --------------------------------------------------------------------------

    def prepare(self, reload_pins: bool) -> defer.Deferred[None]:
        """Have the key and the sessions loaded (once), and the pins (again if asked:
        the user may have edited the file to accept a new key)."""
        steps = []
        if self.client_key is None:
            steps.append(self._load_key())
        if self.sessions is None:
            steps.append(self._serial(self.store.load_sessions).addCallback(self._loaded))
        if reload_pins:
            steps.append(self._serial(self.known.load))
        d = defer.gatherResults(steps, consumeErrors=True)
        d.addCallbacks(lambda _: None, _first_failure)
        return d

    def _load_key(self) -> defer.Deferred:
        if self._key_loading is None:
            self._key_loading = self._serial(self.store.load_or_create_client_key)
            self._key_loading.addBoth(self._key_loaded)
        mine: defer.Deferred = defer.Deferred()

        def forward(result: Any) -> Any:
            (mine.errback if isinstance(result, Failure) else mine.callback)(result)
            return None if isinstance(result, Failure) else result
        self._key_loading.addBoth(forward)
        return mine

    def _key_loaded(self, result: Any) -> Any:
        if isinstance(result, Failure):
            self._key_loading = None        # try again next time
            return result
        key, created = result
        if created:
            self.log.info("Made this client's RSA key in {path}",
                          path=str(self.store.client_key_path))
        self.client_key = key
        return key

    def _loaded(self, sessions: Sessions) -> None:
        if self.sessions is None:
            self.sessions = sessions

    # -- the sessions, changed and saved --------------------------------------------------

    def account(self, address: str, name: str | None) -> AccountRecord | None:
        """The saved record of ``name`` (None: the current account) on ``address``."""
        if self.sessions is None:
            return None
        return (self.sessions.account(address, name) if name
                else self.sessions.current(address))

    def remember_login(self, address: str, name: str, token: str,
                       expires: float | None) -> None:
        assert self.sessions is not None
        self.sessions.remember_login(address, name, token, expires)
        self.save_sessions()

    def forget_token(self, address: str, name: str | None) -> None:
        """Delete the token of ``name`` (None: the current account) and save."""
        if self.sessions is None:
            return
        if name is None:
            current = self.sessions.current(address)
            if current is None:
                return
            name = current.account_name
        if self.sessions.forget_token(address, name):
            self.save_sessions()

    def cursor(self, address: str, name: str) -> int:
        return self.sessions.cursor(address, name) if self.sessions is not None else 0

    def set_cursor(self, address: str, name: str, last_id: int) -> None:
        if self.sessions is not None and last_id > self.sessions.cursor(address, name):
            self.sessions.set_cursor(address, name, last_id)
            self.save_sessions()

    # -- writing --------------------------------------------------------------------------

    def save_sessions(self) -> None:
        assert self.sessions is not None
        self._queue(self.store.write_sessions, render_sessions(self.sessions))

    def save_known_servers(self) -> None:
        self._queue(write_private_file, self.known.path, self.known.render())

    def writes_done(self) -> defer.Deferred[None]:
        """Fires once every write queued so far is done."""
        done: defer.Deferred[None] = defer.Deferred()

        def fire(result: Any) -> Any:
            done.callback(None)
            return result
        self._writes.addBoth(fire)
        return done

    def _queue(self, fn: Callable[..., None], *args: Any) -> None:
        self._serial(fn, *args).addErrback(self._write_failed)

    def _serial(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        """Run ``fn`` off the reactor thread once every file job queued before is done."""
        done: defer.Deferred = defer.Deferred()

        def run(_: Any) -> defer.Deferred:
            d = self._run(fn, *args)
            d.addBoth(lambda result: (done.errback if isinstance(result, Failure)
                                      else done.callback)(result))
            return d                        # the queue waits; its own result stays None
        self._writes.addCallback(run)
        return done

    def _write_failed(self, failure: Failure) -> None:
        self.log.failure("Could not save the client's state in {path}", failure,
                         path=str(self.store.config_dir))


def _first_failure(failure: Failure) -> Failure:
    """gatherResults wraps the first failure in FirstError: unwrap it."""
    if isinstance(failure.value, defer.FirstError):
        return failure.value.subFailure
    return failure
