"""One party of an audio test, in its own process with its own ALSA card.

ALSA_CONFIG_PATH has to be set before PortAudio starts and pyaudio keeps one PortAudio
per process, so every party that touches real pyaudio runs this script as a child
(``spawn_party``), with the environment of its `tests.support.alsa.AlsaFiles`.

The child prints ``ready`` once imported and set up, waits for ``go`` on stdin (so two
parties start together), runs, writes its results as JSON to ``config["result"]`` and
exits 0. Modes:

* ``call``: a `CallEngine` on the real pyaudio default device for ``seconds``, with the
  call parameters in the config (``block_direct`` sends only to the relay);
* ``loopback``: an `AudioPump` on a `PyAudioDevice` for ``frames`` frame slots, playing
  back each frame as soon as it is captured.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve()


# -- parent side -------------------------------------------------------------------------

class PartyProcess(ProcessProtocol):
    """The parent's handle on one party: ``ready``, ``go()``, ``ended``."""

    def __init__(self) -> None:
        self.ready: Deferred[PartyProcess] = Deferred()
        self.ended: Deferred[PartyProcess] = Deferred()
        self.output = b""
        self.errors = b""
        self.status: int | None = None

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.output += data
        if not self.ready.called and b"ready\n" in self.output:
            self.ready.callback(self)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.errors += data

    def go(self) -> None:
        self.transport.write(b"go\n")
        self.transport.closeStdin()

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self.status = 0 if reason.check(ProcessDone) else getattr(reason.value, "exitCode", -1)
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.describe()))
        if self.status == 0:
            self.ended.callback(self)
        else:
            self.ended.errback(RuntimeError(self.describe()))

    def describe(self) -> str:
        tail = self.errors.decode(errors="replace").splitlines()[-15:]
        return f"call party exited {self.status}:\n" + "\n".join(tail)


def spawn_party(reactor: Any, config: dict[str, Any], env: dict[str, str],
                netns: str | None = None) -> PartyProcess:
    """Start this script as a child with ``config``; ``env`` carries ALSA_CONFIG_PATH.

    With ``netns`` the child runs inside that network namespace (``ip netns exec``).
    """
    env = dict(env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    party = PartyProcess()
    argv = [sys.executable, str(SCRIPT), json.dumps(config)]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    executable = argv[0] if netns is None else shutil.which("ip") or "ip"
    reactor.spawnProcess(party, executable, argv, env=env, path=str(ROOT))
    return party


def party_config(params: Any, **extra: Any) -> dict[str, Any]:
    """The JSON config of a ``call`` party for `CallParams` ``params``."""
    config = {
        "mode": "call",
        "call_id": params.call_id.hex(),
        "member": params.member,
        "key": base64.b64encode(params.key).decode(),
        "token": base64.b64encode(params.token).decode(),
        "relay": list(params.relay),
        "codec": params.codec,
    }
    config.update(extra)
    return config


# -- child side --------------------------------------------------------------------------

def _run_call(reactor: Any, config: dict[str, Any]) -> Deferred[dict[str, Any]]:
    from messenger.client.calls.engine import CallEngine  # noqa: PLC0415
    from messenger.client.calls.media import CallParams, MediaSession  # noqa: PLC0415
    from tests.support.netsim import blocking_session_factory, relay_only  # noqa: PLC0415

    params = CallParams(
        call_id=bytes.fromhex(config["call_id"]), member=config["member"],
        key=base64.b64decode(config["key"]), token=base64.b64decode(config["token"]),
        relay=(config["relay"][0], config["relay"][1]), codec=config["codec"])
    factory = (blocking_session_factory(relay_only) if config.get("block_direct")
               else MediaSession)
    began = reactor.seconds()
    events: list[tuple[float, str]] = []
    engine = CallEngine(reactor, session_factory=factory,
                        on_media=lambda state, why: events.append(
                            (round(reactor.seconds() - began, 3), state)))
    done: Deferred[dict[str, Any]] = Deferred()

    def finish() -> None:
        stats = engine.stats()
        result = {name: getattr(stats, name) for name in stats.__dataclass_fields__}
        result["blocked"] = getattr(engine.session.transport, "blocked", 0)
        result["media_events"] = events
        result["active_after"] = next((t for t, state in events if state == "active"), None)
        engine.stop().addCallback(lambda _: done.callback(result))

    def started(_: object) -> None:
        reactor.callLater(config["seconds"], finish)

    engine.start(params).addCallbacks(started, done.errback)
    return done


def _run_loopback(reactor: Any, config: dict[str, Any]) -> Deferred[dict[str, Any]]:
    from messenger.client.calls.audio import AudioPump, PyAudioDevice  # noqa: PLC0415
    from messenger.client.calls.codec import SILENCE  # noqa: PLC0415

    device = PyAudioDevice()
    captured: list[bytes] = []
    done: Deferred[dict[str, Any]] = Deferred()
    started = time.monotonic()

    def on_capture(pcm: bytes | None, slot: int) -> None:
        captured.append(pcm if pcm is not None else b"")
        if len(captured) >= config["frames"] and pump.running:
            pump.stop()
            reactor.callLater(0, finish)

    def playback(now: float) -> bytes:
        return captured[-1] if captured and captured[-1] else SILENCE

    def finish() -> None:
        elapsed = time.monotonic() - started
        device.close()
        done.callback({"frames": len(captured), "elapsed": elapsed,
                       "missing": sum(1 for frame in captured if not frame)})

    pump = AudioPump(device, reactor, on_capture, playback)
    pump.start()
    return done


def main() -> None:
    from twisted.internet import reactor, stdio  # noqa: PLC0415
    from twisted.protocols.basic import LineReceiver  # noqa: PLC0415

    config = json.loads(sys.argv[1])
    modes = {"call": _run_call, "loopback": _run_loopback}
    outcome: dict[str, Any] = {}

    def run(_: object = None) -> None:
        d = modes[config["mode"]](reactor, config)

        def write(result: dict[str, Any]) -> None:
            Path(config["result"]).write_text(json.dumps(result))
            outcome["status"] = 0

        def fail(failure: Failure) -> None:
            sys.stderr.write(failure.getTraceback())
            outcome["status"] = 1

        d.addCallbacks(write, fail).addBoth(lambda _: reactor.stop())

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:  # noqa: N802
            if line.strip() == b"go" and not outcome:
                outcome["started"] = 1
                reactor.callLater(0, run)

    stdio.StandardIO(Control())
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    reactor.callLater(60, reactor.stop)  # never outlive a broken test
    reactor.run()
    sys.exit(outcome.get("status", 2))


if __name__ == "__main__":
    main()
