"""Markdown tables from a results JSONL file: messenger-bench, xmpp_load.py and relay_load.py lines.

    messenger-bench report docs/bench-results/results.jsonl [--since 2026-11-23T18]

One row per run, in file order, grouped by figure; then, for the delivery runs, the
same-sitting ratios of each label's mean against Prosody's, ejabberd's and the floor's at
the same P and rate. The delivery rows use the keys of the shared harness's summarize(), so
Prosody, ejabberd (xmpp_load.py, label ``ejabberd…``) and floor lines render in one table.
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from statistics import mean
from typing import Any


def f(v: Any, nd: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def server_kind(r: dict[str, Any]) -> str:
    """messenger, floor, ejabberd or prosody: which server a delivery line measured.

    xmpp_load.py lines carry no ``server`` key; the matrix labels the ejabberd runs
    ``ejabberd…`` (scripts/bench/run_matrix.sh), every other XMPP line is Prosody's.
    """
    server = r.get("server")
    if server == "messenger":
        return "messenger"
    if server == "relay_server.py":
        return "floor"
    return "ejabberd" if (r.get("label") or "").startswith("ejabberd") else "prosody"


def server_name(r: dict[str, Any]) -> str:
    kind = server_kind(r)
    if kind == "messenger":
        persist = {True: "persist", False: "no-persist"}.get(r.get("persist"), "?")
        return f"messenger {r.get('cipher')} {persist}"
    names = {"floor": "floor (relay_server.py)", "ejabberd": "ejabberd 23.01"}
    return names.get(kind, "prosody 0.12")


def delivery_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| date (UTC) | label | server | P | rate | M/sender | run s | msg/s | p50 ms | p95 ms"
           " | p99 ms | max ms | ack p50/p99 ms | srv µs/msg (usr+sys) | main+threads µs/msg"
           " | srv util | srv RSS MiB (peak) | gen µs/msg | 2-core busy | ok |",
           "|" + "---|" * 20]
    for r in rows:
        d = r["delivered"] or 1
        split = ""
        if r.get("server_user_s") is not None:
            split = f" ({r['server_user_s'] * 1e6 / d:.1f}+{r['server_sys_s'] * 1e6 / d:.1f})"
        threads = "–"
        if r.get("server_main_thread_s") is not None:
            threads = (f"{r['server_main_thread_s'] * 1e6 / d:.1f}"
                       f"+{r['server_other_threads_s'] * 1e6 / d:.1f}")
        ack = (f"{f(r.get('ack_ms_p50'), 2)} / {f(r.get('ack_ms_p99'), 2)}"
               if r.get("ack_ms_p50") is not None else "–")
        rss, hwm = r.get("server_rss_kib_after"), r.get("server_hwm_kib")
        out.append("| " + " | ".join([
            r["date"][5:16].replace("T", " "), r.get("label") or "-", server_name(r),
            f(r["pairs"]), f(r["rate"]) if r.get("rate") else "closed",
            f(r["messages_per_sender"]), f(r["duration_s"], 1), f(r["msgs_per_s"], 0),
            f(r["lat_ms_p50"], 2), f(r["lat_ms_p95"], 2), f(r["lat_ms_p99"], 2),
            f(r["lat_ms_max"], 1), ack,
            f(r.get("server_cpu_us_per_msg"), 1) + split, threads,
            f(r.get("server_cpu_util"), 2),
            f"{rss / 1024:.1f} ({hwm / 1024:.1f})" if rss and hwm else "–",
            f(r.get("gen_cpu_us_per_msg"), 1), f(r.get("machine_busy_2cores"), 2),
            "yes" if r["ok"] else f"NO: {r.get('fail')}",
        ]) + " |")
    return out


PEERS = ("prosody", "ejabberd", "floor")


def _ratio(ours: tuple[float, float], peer: tuple[float, float] | None, i: int) -> str:
    """ours[i] / peer[i] with two decimals, or a dash without that peer."""
    return f"{ours[i] / peer[i]:.2f}" if peer else "–"


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    """Means per (label, P, rate) of passing runs, and ratios to the peers at the same P and rate.

    A peer's mean is over all its passing runs at that P and rate (whatever their label), so
    a messenger row is compared with the Prosody, ejabberd and floor runs of the same cell.
    Cores = the server's mean utilisation (ejabberd uses both cores, the others one thread
    each for the reactor).
    """
    groups: OrderedDict[tuple, list[dict[str, Any]]] = OrderedDict()
    peers: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if not r["ok"] or r.get("server_cpu_us_per_msg") is None:
            continue
        cell = (r["pairs"], r.get("rate") or 0)
        groups.setdefault((r.get("label") or "-",) + cell, []).append(r)
        peers.setdefault((server_kind(r),) + cell, []).append(r)

    def means(rs: list[dict[str, Any]] | None) -> tuple[float, float] | None:
        if not rs:
            return None
        return mean(r["msgs_per_s"] for r in rs), mean(r["server_cpu_us_per_msg"] for r in rs)

    out = ["| label | P | rate | runs | msg/s (mean) | srv µs/msg (mean) | srv cores"
           " | msg/s ÷ Prosody | µs/msg ÷ Prosody | msg/s ÷ ejabberd | µs/msg ÷ ejabberd"
           " | µs/msg ÷ floor |", "|" + "---|" * 12]
    for (label, pairs, rate), rs in groups.items():
        m = means(rs)
        assert m is not None
        p = {name: means(peers.get((name, pairs, rate))) for name in PEERS}
        cores = mean(r.get("server_cpu_util") or 0.0 for r in rs)

        out.append("| " + " | ".join([
            label, f(pairs), f(rate) if rate else "closed", f(len(rs)), f(m[0], 0), f(m[1], 1),
            f(cores, 2), _ratio(m, p["prosody"], 0), _ratio(m, p["prosody"], 1),
            _ratio(m, p["ejabberd"], 0), _ratio(m, p["ejabberd"], 1),
            _ratio(m, p["floor"], 1)]) + " |")
    return out


def generic_table(rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    out = ["| date (UTC) | label | " + " | ".join(keys) + " | ok |",
           "|" + "---|" * (len(keys) + 3)]
    for r in rows:
        cells = [r["date"][5:16].replace("T", " "), r.get("label") or "-"]
        for k in keys:
            v = r.get(k)
            cells.append(f(v, 1 if isinstance(v, float) else 0))
        cells.append("yes" if r["ok"] else f"NO: {r.get('fail')}")
        out.append("| " + " | ".join(cells) + " |")
    return out


KIND_KEYS = {
    "groups": ["members", "groups", "online_per_group", "window", "rate", "deliveries",
               "deliveries_per_s", "msgs_per_s", "lat_ms_p50", "lat_ms_p99", "all_ms_p50",
               "all_ms_p99", "server_cpu_us_per_delivery", "server_cpu_us_per_msg",
               "server_cpu_util", "gen_cpu_us_per_delivery"],
    "connections": ["connections", "cipher", "connect_s", "server_rss_kib_before",
                    "server_rss_kib_after", "server_kib_per_conn", "server_cpu_s_connect",
                    "server_cpu_util_idle", "gen_rss_kib", "nofile_server"],
    "logins": ["how", "cipher", "logins", "concurrency", "duration_s", "logins_per_s",
               "login_ms_p50", "login_ms_p99", "server_cpu_ms_per_login", "server_cpu_util",
               "scrypt_n"],
    "relay": ["calls", "pps_offered", "packets_sent", "packets_received", "loss_pct",
              "pps_forwarded", "relay_cpu_us_per_packet", "relay_cpu_util",
              "lat_ms_p50", "lat_ms_p99", "duration_s"],
}


def render(rows: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    delivery = [r for r in rows if "kind" not in r and "pairs" in r]
    if delivery:
        lines += ["### One-to-one delivery (every run, in the order run)", ""]
        lines += delivery_table(delivery)
        lines += ["", "### Same-sitting ratios (means of passing runs)", ""]
        lines += ratio_table(delivery)
    for kind, keys in KIND_KEYS.items():
        rs = [r for r in rows if r.get("kind") == kind]
        if rs:
            lines += ["", f"### {kind}", ""] + generic_table(rs, keys)
    transfers = [r for r in rows if r.get("kind") == "files"]
    if transfers:
        from messenger.bench import files
        lines += ["", "### files", ""] + files.table(transfers)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="messenger-bench report", description=__doc__.split("\n")[0])
    ap.add_argument("path", nargs="?", default="docs/bench-results/results.jsonl")
    ap.add_argument("--since", default="", help="only lines whose date starts at or after this")
    args = ap.parse_args(argv)
    with open(args.path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    rows = [r for r in rows if r.get("date", "") >= args.since]
    print(render(rows))
    return 0
