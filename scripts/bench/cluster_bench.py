#!/usr/bin/env python3
"""The cluster's benchmark (docs/BENCHMARKS.md, "Cluster"): one command for a sitting.

    scripts/bench/cluster_bench.py [--rounds N] [--quick] [--json-out FILE]
    BENCH_PROFILE_DIR=DIR scripts/bench/cluster_bench.py --configs pg-redis-2 --loads closed

For each round, interleaved, on fresh servers (fresh data dirs, a fresh PostgreSQL
database per run): one node on SQLite (the embedded default), one node on PostgreSQL,
two nodes on PostgreSQL + Redis behind HAProxy (clients spread over both by HAProxy's
round robin, so each pair's sender and recipient sit on different nodes: every message
crosses), each at P = 100 closed loop (W = 50) and at 2,000 msg/s offered (open loop).
CPU per message is summed over every serving process (``--also-pids``): the nodes,
PostgreSQL (postmaster and backends), Redis and HAProxy. PostgreSQL and Redis are
started once per sitting, from Debian's packages, in a temporary directory, and stopped
by PID at the end. ``--quick`` runs short (harness check on a busy machine); the
figures in BENCHMARKS.md come from a full run on a quiet machine. Results are appended
as JSON lines (``messenger-bench report`` renders them) and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():   # run with the project venv
    # argv[0] must be the venv's python too: Python finds its prefix from it (with the
    # system python's path there, the exec'd process would exec again, for ever)
    VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")
    os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])  # noqa: S606
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import cluster as dev_cluster  # noqa: E402  (scripts/cluster.py: the same service start-up)

PY = str(ROOT / ".venv" / "bin" / "python")
TWISTD = str(ROOT / ".venv" / "bin" / "twistd")
CONFIGS = ("sqlite-1", "pg-1", "pg-redis-2")
QUIET = ("--requests-per-second", "0", "--connections-per-minute", "0",
         "--logins-per-minute", "0", "--connections-per-minute-network", "0",
         "--logins-per-minute-network", "0")


def start_node(base: Path, name: str, key: Path, extra: list[str]) -> tuple[int, int]:
    data = base / name
    data.mkdir(mode=0o700)
    shutil.copy(key, data / "server_key.pem")
    (data / "server_key.pem").chmod(0o600)
    shutil.copy(base / "secret", data / "secret")
    port = dev_cluster.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    profile = []
    if os.environ.get("BENCH_PROFILE_DIR"):     # cProfile of each node, written at its stop
        profile = ["--profile", str(Path(os.environ["BENCH_PROFILE_DIR"]) / f"{name}.prof"),
                   "--profiler", "cprofile", "--savestats"]
    pid = dev_cluster.spawn([TWISTD, "-n", "--pidfile=", *profile,
                             "--logfile", str(base / f"{name}.log"),
                             "messenger", "--data-dir", str(data), "--port", str(port),
                             "--interface", "127.0.0.1", "--udp-port", "0",
                             "--relay-tcp-port", "-1", *QUIET, *extra],
                            base / f"{name}.out", cwd=base, env=env)
    dev_cluster.wait(lambda: dev_cluster.accepts(port) or not dev_cluster.alive(pid)
                     and sys.exit(f"{name} exited; see {base}"), name)
    return pid, port


def run_config(config: str, services: dict, load: list[str], label: str, json_out: str,
               key: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix=f"bench-{config}-"))
    (base / "secret").write_text("bench-cluster-secret\n")
    pids: list[int] = []
    try:
        extra: list[str] = []
        if config != "sqlite-1":
            database = f"bench_{int(time.time() * 1000)}"
            dev_cluster.create_database(services["pg_port"], database)
            extra = ["--database", f"postgresql://postgres@127.0.0.1:{services['pg_port']}"
                                   f"/{database}"]
        nodes = 2 if config == "pg-redis-2" else 1
        ports = []
        for n in range(nodes):
            node_extra = extra + (["--redis", services["redis"], "--node-name", f"b{n + 1}"]
                                  if nodes > 1 else [])
            pid, port = start_node(base, f"node{n + 1}", key, node_extra)
            pids.append(pid)
            ports.append(port)
        address = f"127.0.0.1:{ports[0]}"
        also = pids[1:]
        if config != "sqlite-1":
            also.append(services["pg_pid"])
        if nodes > 1:
            state = {"nodes": [{"name": f"b{i + 1}", "port": p} for i, p in enumerate(ports)],
                     "pids": {}}
            dev_cluster.start_haproxy(base, state)
            pids.append(state["pids"]["haproxy"])
            also += [services["redis_pid"], state["pids"]["haproxy"]]
            address = state["address"]
            load = [*load, "--alternate-pairs"]
        time.sleep(1.0)
        command = [PY, "-m", "messenger.bench.cli", "--server", address,
                   "--secret-file", str(base / "secret"), "--server-pid", str(pids[0]),
                   "--label", f"{config} {label}", "--json-out", json_out,
                   "--max-seconds", "300", *load]
        if also:
            command += ["--also-pids", ",".join(map(str, also))]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run(command, env=env, check=False)  # noqa: S603
    finally:
        dev_cluster.stop_pids([(str(pid), pid, signal.SIGTERM) for pid in reversed(pids)])
        shutil.rmtree(base, ignore_errors=True)


def table(path: str, offset: int) -> str:
    """The rows this sitting appended to ``path`` (from byte ``offset``) as Markdown."""
    rows = ["| configuration | load | msg/s | p50 ms | p99 ms | node µs/msg | all serving"
            " processes µs/msg | by process (µs/msg) | ok |",
            "|---|---|---|---|---|---|---|---|---|"]
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    for line in lines:
        out = json.loads(line)
        total = out.get("total_cpu_us_per_msg") or out.get("server_cpu_us_per_msg")
        parts = ", ".join(f"{k.split(':')[0]} {v}" for k, v in
                          (out.get("cpu_us_per_msg_by_process") or {}).items())
        config, _, load = out["label"].partition(" ")
        rows.append(f"| {config} | {load} | {out['msgs_per_s']} | {out['lat_ms_p50']} |"
                    f" {out['lat_ms_p99']} | {out.get('server_cpu_us_per_msg')} | {total} |"
                    f" {parts} | {out['ok']} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="short runs (a harness check)")
    ap.add_argument("--json-out", default=str(ROOT / "docs" / "bench-results" / "cluster.jsonl"))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--loads", default="closed,rate", help="closed, rate or both")
    ap.add_argument("--messages", type=int, default=0, help="-M of the closed loop")
    args = ap.parse_args()
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    messages = (200, 60) if args.quick else (1600, 300)
    loads = {"closed P=100": ["-P", "100", "-W", "50", "-M", str(args.messages or messages[0])],
             "2000 msg/s": ["-P", "100", "-M", str(messages[1]), "--rate", "2000"]}
    wanted = args.loads.split(",")
    loads = {label: load for label, load in loads.items()
             if ("closed" if label.startswith("closed") else "rate") in wanted}
    base = Path(tempfile.mkdtemp(prefix="bench-services-"))
    base.chmod(0o755)
    state: dict = {"pids": {}}
    offset = Path(args.json_out).stat().st_size if Path(args.json_out).exists() else 0
    try:
        url = dev_cluster.start_postgres(base, state, database=None)
        redis = dev_cluster.start_redis(base, state)
        services = {"pg_port": int(url.rsplit(":", 1)[1].split("/")[0]),
                    "pg_pid": state["pids"]["postgres"], "redis": redis,
                    "redis_pid": state["pids"]["redis"]}
        key = base / "server_key.pem"
        from messenger.wire import keys
        keys.write_private_key(key, keys.generate(3072))
        for _ in range(args.rounds):
            for config in args.configs.split(","):
                for label, load in loads.items():
                    run_config(config, services, load, label, args.json_out, key)
    finally:
        pids = state["pids"]
        dev_cluster.stop_pids([(name, pid, signal.SIGINT if name == "postgres" else
                                signal.SIGTERM) for name, pid in pids.items()])
        shutil.rmtree(base, ignore_errors=True)
    print(table(args.json_out, offset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
