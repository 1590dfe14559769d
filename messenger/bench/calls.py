"""Call quality on a bad network: PESQ-WB, mouth-to-ear delay and CPU per case.

`run_case` makes one real call on this machine: a relay (`RelayProtocol`) on a UDP
socket, two `CallEngine` s whose "microphones" play the two speech samples and whose
"loudspeakers" record, and between each engine and the relay an `ImpairmentProxy` that
impairs what reaches the engine (so each direction of audio crosses one impaired hop).
The direct path is blocked (every packet crosses the proxies). When both recordings are
long enough the call stops and each direction is scored: PESQ-WB of the played speech
against the sample, and the mouth-to-ear delay (the lag at which the speech came out,
from one engine's capture clock to the other's playback clock; no sound card latency).

``messenger-bench calls`` runs the `CASES` one after the other in real time and prints
a table with the CPU they cost. Tests (tests/client/calls/test_network.py) run them in
*simulated time* (``simulated=True``): the same sockets, relay and engines, but every
timer runs on a `SimulatedClock` that the driver moves 5 ms at a time, letting the real
reactor deliver what is in flight between steps. The outcome then depends only on the
code and the seed, not on how busy the machine is, and an 11 s call takes about 3 s.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task

from messenger.bench import speech
from messenger.bench.impair import CLEAN, Impairment, ImpairmentProxy

LEAD = 1.0          # seconds of silence before the speech (the call sets up meanwhile)
TAIL = 1.0          # and after it, for the jitter buffer to drain


@dataclass(frozen=True)
class Case:
    name: str
    down: Impairment = CLEAN          # what reaches each engine
    processing: bool = False          # echo/noise/gain processing on the capture path


CASES = (
    Case("clean"),
    Case("5% loss", Impairment(loss=0.05)),
    Case("20% loss", Impairment(loss=0.20)),
    Case("5% loss in bursts of 3", Impairment(loss=0.05, burst=3.0)),
    Case("40 ms jitter", Impairment(delay=0.02, jitter=0.04)),
    Case("5% loss + 30 ms jitter + reordering", Impairment(loss=0.05, delay=0.02,
                                                          jitter=0.03, reorder=0.02)),
    Case("clean, echo/noise/gain on", processing=True),
)


@dataclass
class CaseResult:
    name: str
    cpu_percent: float                    # of one core, both ends of the call together
    stats: tuple[Any, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    pesq: tuple[float, float] = (0.0, 0.0)             # a -> b, b -> a
    mouth_to_ear_ms: tuple[float, float] = (0.0, 0.0)
    call: Any = None

    def score(self) -> CaseResult:
        """Score the recordings (PESQ takes a second of CPU: never while calls run)."""
        if self.call is not None:
            self.pesq, self.mouth_to_ear_ms = self.call.score()
            self.call = None
        return self

    @property
    def worst_pesq(self) -> float:
        return min(self.pesq)


class SimulatedClock(task.Clock):
    """Timers in simulated time, sockets on the real reactor."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self.real = real
        self.advance(time.time())       # plausible wall-clock seconds

    def listenUDP(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        return self.real.listenUDP(*args, **kwargs)

    def connectTCP(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        return self.real.connectTCP(*args, **kwargs)

    def resolve(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.resolve(*args, **kwargs)


STEP = 0.005           # simulated seconds per driver step
SETTLE = 6             # real reactor turns per step: enough for four hops on loopback


class _Call:
    """Two engines, two proxies and a relay on loopback."""

    def __init__(self, reactor: Any, case: Case, seed: int,
                 simulated: SimulatedClock | None = None) -> None:
        real = reactor
        reactor = simulated if simulated is not None else real
        self.simulated = simulated
        self.real = real
        from messenger.client.calls.audio import FakeAudioDevice  # noqa: PLC0415
        from messenger.client.calls.dsp import AudioSettings  # noqa: PLC0415
        from messenger.client.calls.engine import CallEngine  # noqa: PLC0415
        from messenger.client.calls.params import CallParams  # noqa: PLC0415
        from messenger.server.relay import CallTable, RelayProtocol  # noqa: PLC0415
        from messenger.wire import media  # noqa: PLC0415

        self.reactor = reactor
        self.ports: list[Any] = []
        table = CallTable()
        self.relay = RelayProtocol(table, reactor)
        relay_port = real.listenUDP(0, self.relay, interface="127.0.0.1")
        self.ports.append(relay_port)
        relay = ("127.0.0.1", relay_port.getHost().port)
        call_id, key = media.new_call_id(), media.new_call_key()
        tokens = (media.new_token(), media.new_token())
        table.add_call(call_id, key, ("a", "b"), tokens)
        self.samples = (speech.speech("a"), speech.speech("b"))
        # with echo/noise processing B stays silent: an echo canceller rightly damps a
        # near end that talks over the far end the whole time (double talk)
        self.one_way = case.processing
        captures = [speech.padded(sample, LEAD, TAIL + 2.0) for sample in self.samples]
        if self.one_way:
            captures[1] = bytes(len(captures[1]))
        self.devices = tuple(FakeAudioDevice(capture) for capture in captures)
        self.proxies = []
        self.engines = []
        processing = AudioSettings() if case.processing else None
        for member in (0, 1):
            proxy = ImpairmentProxy(relay, down=case.down, reactor=reactor,
                                    seed=seed * 2 + member)
            self.ports.append(real.listenUDP(0, proxy, interface="127.0.0.1"))
            self.proxies.append(proxy)
            params = CallParams(call_id, member, key, tokens[member], proxy.address,
                                codec="opus")
            engine = CallEngine(reactor, audio=self.devices[member], interface="127.0.0.1",
                                session_factory=_relay_only(), processing=processing)
            self.engines.append((engine, params))

    @defer.inlineCallbacks
    def run(self) -> Any:
        yield defer.gatherResults([engine.start(params) for engine, params in self.engines])
        need = int((LEAD + len(self.samples[0]) / speech.RATE + TAIL) / 0.02)
        while min(len(device.played) for device in self.devices) < need:
            if self.simulated is None:
                yield task.deferLater(self.real, 0.1, lambda: None)
                continue
            self.simulated.advance(STEP)
            for _ in range(SETTLE):
                yield task.deferLater(self.real, 0, lambda: None)
        stats = tuple(engine.stats() for engine, _ in self.engines)
        yield self.stop()
        return stats

    @defer.inlineCallbacks
    def stop(self) -> Any:
        for engine, _ in self.engines:
            yield engine.stop()
        for port in self.ports:
            yield port.stopListening()

    def score(self) -> tuple[tuple[float, float], tuple[float, float]]:
        scores, delays = [], []
        for speaker in ((0,) if self.one_way else (0, 1)):
            listener = 1 - speaker
            played = b"".join(self.devices[listener].played)
            value, lag = speech.score(self.samples[speaker], played)
            talk = self.engines[speaker][0].pump_started
            hear = self.engines[listener][0].pump_started
            delays.append(round(1000 * (hear + lag / speech.RATE - (talk + LEAD)), 1))
            scores.append(round(value, 2))
        if self.one_way:
            return (scores[0], scores[0]), (delays[0], delays[0])
        return (scores[0], scores[1]), (delays[0], delays[1])


def _relay_only() -> Callable[..., Any]:
    from messenger.client.calls.media import MediaSession  # noqa: PLC0415

    class RelayOnly(MediaSession):
        """Sends only to its relay (here: the impairment proxy)."""

        def _send(self, packet: bytes, target: Any) -> bool:
            if (target[0], target[1]) != self.relay_address:
                return False
            return super()._send(packet, target)

    return RelayOnly


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@defer.inlineCallbacks
def run_case(reactor: Any, case: Case, seed: int = 1, scored: bool = True,
             simulated: bool = False) -> Any:
    """One call through ``case``'s network; fires with a `CaseResult` (scored unless
    ``scored`` is false: then call its `CaseResult.score` once no call runs).
    ``simulated``: timers in simulated time (see the module's docstring)."""
    call = _Call(reactor, case, seed, SimulatedClock(reactor) if simulated else None)
    cpu, wall = _cpu(), time.monotonic()
    try:
        stats = yield call.run()
    except BaseException:
        yield call.stop()
        raise
    cpu, wall = _cpu() - cpu, time.monotonic() - wall
    result = CaseResult(case.name, round(100 * cpu / wall, 1), stats,
                        {"proxies": [p.stats() for p in call.proxies]}, call=call)
    return result.score() if scored else result


def _table(results: list[CaseResult], simulated: bool) -> str:
    lines = ["| case | PESQ-WB a→b | PESQ-WB b→a | mouth-to-ear ms | CPU % of a core |",
             "|---|---|---|---|---|"]
    for result in results:
        cpu = "—" if simulated else f"{result.cpu_percent:.1f}"
        delay = "/".join(f"{value:.0f}" for value in result.mouth_to_ear_ms)
        lines.append(f"| {result.name} | {result.pesq[0]:.2f} | {result.pesq[1]:.2f} | "
                     f"{delay} | {cpu} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``messenger-bench calls``: every case of `CASES`, one after the other."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="messenger-bench calls", description=__doc__)
    parser.add_argument("--simulated", action="store_true",
                        help="simulated time (repeatable scores; no CPU figures)")
    parser.add_argument("--seed", type=int, default=1, help="loss pattern seed")
    parser.add_argument("--case", action="append", default=[],
                        help="run only cases whose name contains this (repeatable)")
    parser.add_argument("--json-out", help="append one JSON line per case to this file")
    args = parser.parse_args(argv)
    cases = [case for case in CASES
             if not args.case or any(part in case.name for part in args.case)]
    from twisted.internet import reactor  # noqa: PLC0415
    results: list[CaseResult] = []
    outcome = {"status": 0}

    @defer.inlineCallbacks
    def run() -> Any:
        try:
            for case in cases:
                result = yield run_case(reactor, case, seed=args.seed,
                                        simulated=args.simulated)
                results.append(result)
                line = {"bench": "calls", "case": result.name, "pesq": result.pesq,
                        "mouth_to_ear_ms": result.mouth_to_ear_ms,
                        "cpu_percent": None if args.simulated else result.cpu_percent,
                        "simulated": args.simulated, "seed": args.seed}
                print(json.dumps(line), flush=True)
                if args.json_out:
                    with open(args.json_out, "a", encoding="utf-8") as out:
                        out.write(json.dumps(line) + "\n")
            print(_table(results, args.simulated), file=sys.stderr)
        except Exception as exc:  # report and fail, never hang
            print(f"messenger-bench calls: {exc!r}", file=sys.stderr)
            outcome["status"] = 1
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    return outcome["status"]
