"""Separate network hosts on one machine: Linux network namespaces joined by a bridge.

Why namespaces: a worker "on another machine" must reach Redis over a real network
link that a test can cut, not over loopback. Every host — and the switch — is a
namespace of its own; nothing is added to the machine's own namespace, so a cut link
can never route traffic out through the machine's default route. Addresses are
private (RFC 1918) and exist only inside these namespaces. Names carry the test
process's pid (`pf-<pid>-…`), and close() removes every namespace (and with it every
veth and the bridge), also after a failed test.

    with NetnsHosts(["db", "h1", "h2"]) as net:
        net.run("db", "ip", "addr")            # a command on host db
        net.cut("h1"); net.mend("h1")          # link down / up at the switch port

docs/deployment.md shows the same topology with plain `ip` commands.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable

SUBNET = "10.213.7"          # 10.213.7.0/24, inside the namespaces only


def netns_unavailable() -> str | None:
    """Why namespaces cannot be built here (None when they can): tests skip with it."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"pf-{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    try:
        bridge = subprocess.run(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"],
                                capture_output=True, text=True)
        if bridge.returncode != 0:
            return f"cannot create a bridge in a namespace: {bridge.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class NetnsHosts:
    """Hosts `names` on one /24, each in its own namespace, ports on a bridge in a switch namespace."""

    def __init__(self, names: Iterable[str]) -> None:
        self.prefix = f"pf-{os.getpid()}-"
        self.switch = self.prefix + "sw"
        self.hosts = {name: (self.prefix + name, f"{SUBNET}.{i}") for i, name in enumerate(names, start=1)}
        self.created: list[str] = []

    def ns(self, host: str) -> str:
        return self.hosts[host][0]

    def addr(self, host: str) -> str:
        return self.hosts[host][1]

    def wrap(self, host: str) -> list[str]:
        """The prefix that runs a command on `host` (it execs, so the pid is the command's)."""
        return ["ip", "netns", "exec", self.ns(host)]

    def run(self, host: str, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([*self.wrap(host), *cmd], capture_output=True, text=True, check=check, timeout=timeout)

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def build(self) -> "NetnsHosts":
        for ns in [self.switch] + [ns for ns, _ in self.hosts.values()]:
            self._ip("netns", "add", ns)
            self.created.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        self._ip("-n", self.switch, "link", "set", "br0", "up")
        for host, (ns, addr) in self.hosts.items():
            port = self.port(host)
            # The pair is born in the switch namespace; its far end moves straight to the host.
            self._ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
        return self

    def port(self, host: str) -> str:
        return f"p-{host}"[:15]

    def cut(self, host: str) -> None:
        """Unplug `host`: its switch port goes down; packets to and from it are lost."""
        self._ip("-n", self.switch, "link", "set", self.port(host), "down")

    def mend(self, host: str) -> None:
        self._ip("-n", self.switch, "link", "set", self.port(host), "up")

    def close(self) -> None:
        """Remove every namespace made here (their veths and the bridge go with them).
        Processes still inside must have been stopped by the caller first."""
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()

    def __enter__(self) -> "NetnsHosts":
        try:
            return self.build()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
