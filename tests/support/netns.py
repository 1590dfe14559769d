"""Two hosts behind two NATs, built from Linux network namespaces, for call tests.

::

    host_a (10.214.N.2) --veth-- nat_a (MASQUERADE) 10.213.N.2 --+
                                                                  bridge 10.213.N.1 (this
    host_b (10.215.N.2) --veth-- nat_b (MASQUERADE) 10.213.N.3 --+  namespace: the server)

The server runs in the test's own namespace and is reached at the bridge address. Each
host sees only its NAT; the NATs see each other and the server on the bridge, so a call's
direct path needs hole punching through both NATs (each NAT is MASQUERADE plus a firewall
that drops unsolicited inbound traffic, as home routers do), and `block_direct` makes the NATs drop
traffic between each other so only the relay can carry the call. ``build(firewall=False)``
leaves the NATs as plain MASQUERADE: then a peer's early probe creates a conntrack entry
that makes the NAT pick another port for the host's own probe (the port is not
preserved), and hole punching works only when the probes cross in flight; otherwise the
call must fall back to the relay. Needs root, ``ip`` (iproute2) and ``iptables``;
`NatLab.available` says whether they are here.
"""

from __future__ import annotations

import os
import shutil
import subprocess


class NatLab:
    def __init__(self) -> None:
        number = os.getpid() % 250 + 1
        tag = f"{os.getpid() % 100000}"
        self.number = number
        self.bridge = f"mb{tag}"
        self.server_ip = f"10.213.{number}.1"
        self.nat_public = {"a": f"10.213.{number}.2", "b": f"10.213.{number}.3"}
        self.private_net = {"a": f"10.214.{number}", "b": f"10.215.{number}"}
        self.host = {side: f"mhost{side}{tag}" for side in "ab"}
        self.nat = {side: f"mnat{side}{tag}" for side in "ab"}
        self._links = {side: f"mp{side}{tag}" for side in "ab"}
        self._built = False

    @staticmethod
    def available() -> str | None:
        """None when the lab can be built here, else the reason it cannot."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        return None

    def _run(self, *argv: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")

    def _ns(self, namespace: str, *argv: str) -> None:
        self._run("ip", "netns", "exec", namespace, *argv)

    def build(self, firewall: bool = True) -> None:
        self.teardown()
        self._built = True
        run = self._run
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.server_ip}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for side in "ab":
            nat, host, link = self.nat[side], self.host[side], self._links[side]
            private = self.private_net[side]
            run("ip", "netns", "add", nat)
            run("ip", "netns", "add", host)
            # public side: root/bridge <-> nat
            run("ip", "link", "add", link, "type", "veth", "peer", "name", "out",
                "netns", nat)
            run("ip", "link", "set", link, "master", self.bridge)
            run("ip", "link", "set", link, "up")
            run("ip", "-n", nat, "addr", "add", f"{self.nat_public[side]}/24", "dev", "out")
            run("ip", "-n", nat, "link", "set", "out", "up")
            run("ip", "-n", nat, "link", "set", "lo", "up")
            # private side: nat <-> host
            run("ip", "-n", nat, "link", "add", "in", "type", "veth", "peer", "name", "eth0",
                "netns", host)
            run("ip", "-n", nat, "addr", "add", f"{private}.1/24", "dev", "in")
            run("ip", "-n", nat, "link", "set", "in", "up")
            run("ip", "-n", host, "addr", "add", f"{private}.2/24", "dev", "eth0")
            run("ip", "-n", host, "link", "set", "eth0", "up")
            run("ip", "-n", host, "link", "set", "lo", "up")
            run("ip", "-n", host, "route", "add", "default", "via", f"{private}.1")
            self._ns(nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            self._ns(nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "out",
                     "-j", "MASQUERADE")
            # Like a home router's firewall: unsolicited inbound traffic is dropped
            # silently. Dropped before conntrack confirms it, such a packet leaves no
            # state behind; without this rule a peer's early probe would occupy the
            # port mapping that the host's own outgoing probe needs (hole punching
            # then fails against a bare MASQUERADE).
            if firewall:
                self._ns(nat, "iptables", "-A", "INPUT", "-i", "out", "-m", "conntrack",
                         "--ctstate", "NEW", "-j", "DROP")

    def block_direct(self) -> None:
        """Make each NAT drop everything to and from the other NAT (the relay stays)."""
        for side, other in (("a", "b"), ("b", "a")):
            for flag in ("-s", "-d"):
                self._ns(self.nat[side], "iptables", "-A", "FORWARD", flag,
                         self.nat_public[other], "-j", "DROP")

    def teardown(self) -> None:
        for side in "ab":
            for namespace in (self.host[side], self.nat[side]):
                subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", self._links[side]], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self._built = False
