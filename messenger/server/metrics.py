"""Prometheus metrics: cheap counters on the hot path, everything else read at scrape time.

Two halves:

* `Metrics` is what the server records as things happen: a dict increment per request
  (``request(action)``), per reply (``reply(code)``), per refusal (``refused(kind)``),
  a field increment per lockout, and two histogram observations per *batch* of the group
  commit. No locks, no label objects, no clock reads: the reactor thread is the only
  writer, and the message path pays well under a microsecond.
* `ServerCollector` turns that, and the state the server already keeps (open connections
  by state, users online, group-commit totals and queue, bytes waiting to be written, the
  call relay's counters, the mail queue), into Prometheus metric families when
  ``/metrics`` is scraped. Process CPU and memory come from prometheus_client's
  `ProcessCollector`.

`metrics_site(server)` is the twisted.web site on ``--metrics-port``: ``/metrics``
(prometheus_client's own Twisted resource) and ``/health`` (`health.HealthResource`).
It keeps no access log: a scrape every 15 s is not worth a log line.

Names follow Prometheus conventions: ``messenger_`` prefix, ``_total`` counters, base
units (``_seconds``, ``_bytes``). docs/OPERATIONS.md lists them with alert examples.
Labels only ever take values from fixed sets (routed action names, JIM codes, states,
refusal kinds): nothing a client sends can add a time series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.twisted import MetricsResource
from twisted.python.failure import Failure
from twisted.web import resource, server

from messenger.server.replies import Ack, Closing, Page
from messenger.server.states import State
from messenger.wire import codes
from messenger.wire.errors import MessengerError

COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                          1.0, 2.5)
BATCH_ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
# ctx.counters names (counted by the connection code) that are rate-limit refusals.
_RATE_LIMIT_COUNTERS = {"connections_refused": "connection",
                        "rate_limited_requests": "request"}


class Histogram:
    """Bucket counts and a sum, observed on the reactor thread only (no lock)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)   # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return HistogramMetricFamily(name, documentation, buckets=buckets,
                                     sum_value=self.sum)


class Metrics:
    """The per-event counts of one server (see the module docstring)."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.replies: dict[int, int] = {}
        self.refusals: dict[str, int] = {"login": 0}
        self.lockouts = 0
        self.commit_seconds = Histogram(COMMIT_SECONDS_BUCKETS)
        self.batch_rows = Histogram(BATCH_ROWS_BUCKETS)

    def request(self, action: str) -> None:
        """A request for a routed action arrived (only known action names, never raw input)."""
        requests = self.requests
        requests[action] = requests.get(action, 0) + 1

    def reply(self, code: int) -> None:
        """A reply with JIM code ``code`` was sent (message acknowledgements included)."""
        replies = self.replies
        replies[code] = replies.get(code, 0) + 1

    def refused(self, kind: str) -> None:
        """A rate limit refused something: ``connection``, ``login``, ``request``..."""
        refusals = self.refusals
        refusals[kind] = refusals.get(kind, 0) + 1

    def locked_out(self) -> None:
        """An account was locked after repeated failed logins."""
        self.lockouts += 1

    def batch_committed(self, rows: int, seconds: float) -> None:
        """The group commit wrote a batch (its ``on_batch`` hook)."""
        self.batch_rows.observe(rows)
        self.commit_seconds.observe(seconds)


def reply_code(outcome: Any) -> int:
    """The JIM code of a reply that `replies.encode_reply` makes of ``outcome``."""
    kind = type(outcome)
    if kind is Ack:
        return codes.OK
    if kind is dict:
        return outcome.get("response", 0)
    if isinstance(outcome, Failure):
        outcome = outcome.value
    if isinstance(outcome, MessengerError):
        return outcome.code
    if isinstance(outcome, BaseException):
        return codes.SERVER_ERROR
    if isinstance(outcome, Page):
        return outcome.code
    if isinstance(outcome, Closing):
        return outcome.body.get("response", 0)
    return 0


def buffered_bytes(transport: Any) -> int:
    """Bytes written to ``transport`` and not yet handed to the kernel."""
    inner = getattr(transport, "transport", None)   # TLS wraps the TCP transport
    if inner is not None and hasattr(inner, "dataBuffer"):
        transport = inner
    try:
        return (len(transport.dataBuffer) - transport.offset
                + getattr(transport, "_tempDataLen", 0))
    except (AttributeError, TypeError):
        return 0


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class ServerCollector(Collector):
    """Reads a running `MessengerServer` when scraped (nothing is kept in between)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        ctx = self.server.ctx
        if ctx is None:
            return
        yield from self._connections(ctx)
        yield from self._requests(ctx.metrics)
        yield from self._refusals(ctx)
        yield from self._store(ctx)
        relay = self.server.relay
        if relay is not None:
            yield from self._relay(relay, len(ctx.call_table))
        mailer = self.server.mailer
        if mailer is not None and hasattr(mailer, "stats"):
            yield from self._mail(mailer.stats())

    @staticmethod
    def _connections(ctx: Any) -> Iterator[Metric]:
        by_state = {state.value: 0 for state in State if state is not State.CLOSED}
        buffered = 0
        for connection in list(ctx.connections):
            state = connection.state.value
            if state in by_state:
                by_state[state] += 1
            outbound = getattr(connection, "outbound", None)
            buffered += buffered_bytes(connection.transport) + (
                outbound.queued + outbound.pending if outbound is not None else 0)
        family = GaugeMetricFamily("messenger_connections", "Open client connections by"
                                   " state.", labels=["state"])
        for state, count in by_state.items():
            family.add_metric([state], count)
        yield family
        yield _gauge("messenger_users_online", "Logged-in users.", ctx.router.online_count())
        yield _gauge("messenger_outgoing_buffer_bytes", "Bytes of replies and pushes"
                     " waiting to be written to clients (the push queue).", buffered)

    @staticmethod
    def _requests(metrics: Metrics) -> Iterator[Metric]:
        family = CounterMetricFamily("messenger_requests", "Requests by action.",
                                     labels=["action"])
        for action, count in sorted(metrics.requests.items()):
            family.add_metric([action], count)
        yield family
        family = CounterMetricFamily("messenger_replies", "Replies by JIM code (message"
                                     " acknowledgements included).", labels=["code"])
        for code, count in sorted(metrics.replies.items()):
            family.add_metric([str(code)], count)
        yield family
        yield _counter("messenger_lockouts", "Accounts locked after repeated failed"
                       " logins.", metrics.lockouts)
        yield metrics.commit_seconds.family("messenger_db_commit_seconds", "Time of one"
                                            " group-commit transaction.")
        yield metrics.batch_rows.family("messenger_db_commit_batch_rows", "Messages"
                                        " written per group-commit transaction.")

    @staticmethod
    def _refusals(ctx: Any) -> Iterator[Metric]:
        counters = dict(getattr(ctx, "counters", {}))
        limited = dict(ctx.metrics.refusals)
        for name, kind in _RATE_LIMIT_COUNTERS.items():
            limited[kind] = limited.get(kind, 0) + counters.get(name, 0)
        family = CounterMetricFamily("messenger_ratelimit_refusals", "Actions refused by"
                                     " a rate limit, by kind.", labels=["kind"])
        for kind, count in sorted(limited.items()):
            family.add_metric([kind], count)
        yield family
        family = CounterMetricFamily("messenger_events", "Counted events of the"
                                     " connection code (overflows, quota refusals, ...).",
                                     labels=["event"])
        for name, count in sorted(counters.items()):
            family.add_metric([name], count)
        yield family
        refusals = getattr(getattr(ctx, "refusals", None), "total", {})
        family = CounterMetricFamily("messenger_refusals", "Connections and requests"
                                     " refused, by reason (the refusal log's kinds).",
                                     labels=["reason"])
        for reason, count in sorted(refusals.items()):
            family.add_metric([reason], count)
        yield family

    @staticmethod
    def _store(ctx: Any) -> Iterator[Metric]:
        group = ctx.messages
        yield _counter("messenger_messages_stored", "Messages committed to the store.",
                       group.rows)
        yield _counter("messenger_db_commit_batches", "Group-commit transactions.",
                       group.batches)
        yield _gauge("messenger_db_commit_queue_rows", "Messages waiting for the next"
                     " group commit.", group.pending)
        index = ctx.search_index
        yield _gauge("messenger_search_index_waiting", "Messages stored but not indexed for"
                     " search yet (SQLite indexes in batches; search still finds them).",
                     index.waiting)
        yield _counter("messenger_search_indexed", "Messages indexed for search in batches.",
                       index.indexed)

    @staticmethod
    def _relay(relay: Any, calls: int) -> Iterator[Metric]:
        stats = relay.stats()
        yield _gauge("messenger_calls_active", "Calls known to the relay.", calls)
        yield _counter("messenger_relay_packets", "Media packets forwarded by the relay.",
                       stats["relayed"])
        yield _counter("messenger_relay_hellos", "HELLO packets answered by the relay.",
                       stats["hellos"])
        family = CounterMetricFamily("messenger_relay_dropped_packets", "Packets the relay"
                                     " dropped, by reason.", labels=["reason"])
        for key, count in sorted(stats.items()):
            if key.startswith("dropped_"):
                family.add_metric([key[len("dropped_"):]], count)
        yield family

    @staticmethod
    def _mail(stats: dict[str, int]) -> Iterator[Metric]:
        yield _gauge("messenger_mail_queue", "Mails waiting for delivery.", stats["queued"])
        yield _counter("messenger_mail_delivered", "Mails delivered.", stats["delivered"])
        yield _counter("messenger_mail_deferred", "Delivery attempts that failed for now"
                       " (retried later).", stats["deferred"])
        yield _counter("messenger_mail_failed", "Mails given up (permanent failure or"
                       " too old).", stats["failed"])
        yield _counter("messenger_mail_dropped", "Mails dropped because the queue was"
                       " full.", stats["dropped"])


def make_registry(server: Any) -> CollectorRegistry:
    """A registry of this server's metrics plus process CPU, memory and descriptors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class _QuietSite(server.Site):
    """A Site without an access log: scrapes and health checks are not events."""

    noisy = False

    def log(self, request: Any) -> None:
        pass


def metrics_site(server_: Any, clock: Any) -> server.Site:
    """``/metrics`` and ``/health`` for the running server ``server_``."""
    from messenger.server.health import HealthCheck, HealthResource
    root = resource.Resource()
    root.putChild(b"metrics", MetricsResource(registry=make_registry(server_)))
    root.putChild(b"health", HealthResource(HealthCheck(server_, clock)))
    return _QuietSite(root)
