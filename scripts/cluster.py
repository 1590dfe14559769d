#!/usr/bin/env python3
"""``./dev cluster up|status|down``: a whole cluster on this machine, for trying it out.

``up`` starts, from Debian's packages and in a temporary directory, a PostgreSQL cluster
(initdb), Redis, three Messenger nodes (twistd, sharing the database, Redis, the shared
secret and the server key) and HAProxy in TCP mode in front of them (health checks, the
nodes as backends), all on 127.0.0.1 and free ports, then prints exactly two lines:

    address 127.0.0.1:PORT      where clients connect (HAProxy)
    secret /tmp/.../secret      the shared-secret file clients use

``status`` prints one line per node, ``node NAME pid PID port PORT`` and whether it runs.
``down`` stops everything ``up`` started, by the PIDs it wrote down (SIGTERM, SIGKILL
after 10 s), and removes the directory. The state lives in ``.cluster/state.json``.
Everything else goes to the logs in the cluster's directory (``logs`` in the state).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where up writes down what it started ($MESSENGER_CLUSTER_STATE: tests use their own).
STATE = Path(os.environ.get("MESSENGER_CLUSTER_STATE") or ROOT / ".cluster" / "state.json")
VENV = ROOT / ".venv"
NODES = ("node1", "node2", "node3")
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
START_TIMEOUT = 60.0

sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:    # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(condition, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster: timed out waiting for {what}")
        time.sleep(0.1)


def spawn(argv: list[str], log: Path, user: str | None = None, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> int:
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,  # noqa: S603
                                   stderr=subprocess.STDOUT, user=user, cwd=cwd, env=env,
                                   start_new_session=True)
    return process.pid


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def create_database(port: int, name: str) -> None:
    import psycopg2
    connection = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    connection.autocommit = True
    connection.cursor().execute(f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C'"
                                " LC_CTYPE 'C' TEMPLATE template0")
    connection.close()


def start_postgres(base: Path, state: dict, database: str | None = "messenger") -> str:
    if not PG_BIN:
        raise SystemExit("cluster: PostgreSQL is not installed (./dev install)")
    bindir = PG_BIN[-1]
    pgdir = base / "postgres"
    pgdir.mkdir()
    user = None
    if os.geteuid() == 0:       # PostgreSQL refuses to run as root
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        os.chown(pgdir, entry.pw_uid, entry.pw_gid)
    subprocess.run([str(bindir / "initdb"), "-D", str(pgdir / "data"), "-A", "trust",  # noqa: S603
                    "-U", "postgres", "-E", "UTF8", "--locale=C"], check=True, user=user,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=pgdir)
    port = free_port()
    state["pids"]["postgres"] = spawn(
        [str(bindir / "postgres"), "-D", str(pgdir / "data"), "-p", str(port), "-k",
         str(pgdir), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
        base / "postgres.log", user=user, cwd=pgdir)
    import psycopg2

    def ready() -> bool:
        try:
            psycopg2.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                             connect_timeout=1).close()
            return True
        except psycopg2.OperationalError:
            return False
    wait(ready, "PostgreSQL")
    if database is not None:
        create_database(port, database)
    return f"postgresql://postgres@127.0.0.1:{port}/{database or 'postgres'}"


def start_redis(base: Path, state: dict) -> str:
    port = free_port()
    state["pids"]["redis"] = spawn(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
         "--dir", str(base)], base / "redis.log", cwd=base)
    wait(lambda: accepts(port), "Redis")
    return f"redis://127.0.0.1:{port}/0"


def start_nodes(base: Path, state: dict, database: str, redis: str) -> None:
    from messenger.wire import keys
    secret = base / "secret"
    secret.write_text(secrets.token_urlsafe(32) + "\n")
    secret.chmod(0o600)
    key = keys.generate(3072)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    logs = {}
    for name in NODES:
        data = base / name
        data.mkdir(mode=0o700)
        keys.write_private_key(data / "server_key.pem", key)
        port, udp, relay_tcp = free_port(), free_port(), free_port()
        log = base / f"{name}.log"
        argv = [str(VENV / "bin" / "twistd"), "-n", "--pidfile=", "messenger",
                "--data-dir", str(data), "--secret-file", str(secret),
                "--interface", "127.0.0.1", "--port", str(port), "--udp-port", str(udp),
                "--relay-tcp-port", str(relay_tcp), "--database", database,
                "--redis", redis, "--node-name", name,
                "--relay-address", f"127.0.0.1:{udp}"]
        state["nodes"].append({"name": name, "pid": spawn(argv, log, cwd=base, env=env),
                               "port": port})
        logs[name] = log
    for node in state["nodes"]:
        log = logs[node["name"]]

        def listening(log: Path = log, pid: int = node["pid"]) -> bool:
            if not alive(pid):
                raise SystemExit(f"cluster: {log.stem} exited; see {log}")
            return b"Messenger listening on" in log.read_bytes()
        wait(listening, node["name"])
    state["secret"] = str(secret)


def start_haproxy(base: Path, state: dict) -> None:
    port = free_port()
    config = base / "haproxy.cfg"
    # the same configuration as the tests' (one frontend, the nodes as checked backends)
    from tests.support.services import haproxy_config
    config.write_text(haproxy_config(port, [(n["name"], n["port"]) for n in state["nodes"]],
                                     check_ms=1000))
    state["pids"]["haproxy"] = spawn([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db",
                                      "-f", str(config)], base / "haproxy.log", cwd=base)
    wait(lambda: accepts(port), "HAProxy")
    state["address"] = f"127.0.0.1:{port}"


def load() -> dict | None:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return None


def up() -> int:
    state = load()
    if state is not None and any(alive(n["pid"]) for n in state["nodes"]):
        print(f"address {state['address']}")
        print(f"secret {state['secret']}")
        print("cluster: already up (./dev cluster down first for a new one)", file=sys.stderr)
        return 0
    if state is not None:       # a cluster whose nodes died: stop what is left of it first
        down()
    base = Path(tempfile.mkdtemp(prefix="messenger-cluster-"))
    base.chmod(0o755)
    state = {"base": str(base), "pids": {}, "nodes": [], "address": "", "secret": ""}
    STATE.parent.mkdir(exist_ok=True)

    def save() -> None:
        STATE.write_text(json.dumps(state, indent=1))
    try:
        database = start_postgres(base, state)
        save()
        redis = start_redis(base, state)
        save()
        start_nodes(base, state, database, redis)
        save()
        start_haproxy(base, state)
        save()
    except BaseException:
        save()
        print(f"cluster: the start failed; logs in {base}; stopping what started",
              file=sys.stderr)
        down()
        raise
    print(f"address {state['address']}")
    print(f"secret {state['secret']}")
    print(f"cluster: logs in {base}; ./dev cluster status, ./dev cluster down",
          file=sys.stderr)
    return 0


def status() -> int:
    state = load()
    if state is None:
        print("cluster: not up", file=sys.stderr)
        return 1
    for node in state["nodes"]:
        print(f"node {node['name']} pid {node['pid']} port {node['port']}"
              f" {'running' if alive(node['pid']) else 'stopped'}")
    return 0


def stop_pids(pids: list[tuple[str, int, int]]) -> None:
    for _, pid, signum in pids:
        if alive(pid):
            os.kill(pid, signum)
    deadline = time.monotonic() + 10
    while any(alive(pid) for _, pid, _ in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for name, pid, _ in pids:
        if alive(pid):
            print(f"cluster: {name} ({pid}) did not stop; killing it", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)


def down() -> int:
    state = load()
    if state is None:
        print("cluster: not up", file=sys.stderr)
        return 0
    stop_pids([(n["name"], n["pid"], signal.SIGTERM) for n in state["nodes"]])
    pids = state["pids"]
    stop_pids([(name, pids[name], signal.SIGINT if name == "postgres" else signal.SIGTERM)
               for name in ("haproxy", "redis", "postgres") if name in pids])
    shutil.rmtree(state["base"], ignore_errors=True)
    STATE.unlink()
    print("cluster: stopped", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    commands = {"up": up, "status": status, "down": down}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: ./dev cluster up|status|down", file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
