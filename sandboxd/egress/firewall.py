"""Host firewall rules on the sandbox bridge: the proxy port and nothing else.

An internal Docker network has no route out, but the host itself answers on the
bridge's gateway address: every host service bound to 0.0.0.0 (sandboxd's own
API included) would be one hop away from sandbox code. Two walls close that:

- INPUT: packets arriving on the bridge jump to ``<bridge>-in``, which accepts
  replies on established connections and new TCP connections to the proxy port
  on the gateway address, and drops everything else;
- DOCKER-USER (FORWARD where Docker has none): packets from the bridge to
  link-local (cloud metadata), private, shared and loopback ranges jump to
  ``<bridge>-fwd`` and are dropped, should any route ever appear.

IPv6 gets the same chains dropping everything from the bridge (sandboxes have no
IPv6 there; this only makes sure). Each table is replaced in one
``iptables-restore --noflush`` transaction, so there is no moment with the chain
empty, and applying twice leaves exactly one jump. The rules are left in place
when sandboxd stops: sandboxes outlive the daemon and stay walled in.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_log = logging.getLogger(__name__)

# Where a sandbox must never be forwarded to, whatever routes the host grows.
BLOCKED_RANGES_V4: tuple[str, ...] = (
    "169.254.0.0/16",  # link-local: cloud metadata services
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "0.0.0.0/8",
)
_TIMEOUT_S = 20


class FirewallUnavailable(Exception):
    """The rules could not be installed (no iptables, or no privilege to change them)."""


@dataclass(frozen=True, slots=True)
class FirewallPlan:
    bridge: str
    gateway: str
    proxy_port: int

    @property
    def input_chain(self) -> str:
        return f"{self.bridge}-in"

    @property
    def forward_chain(self) -> str:
        return f"{self.bridge}-fwd"


def ipv4_rules(plan: FirewallPlan) -> list[list[str]]:
    """The rules of both chains, as iptables arguments (without the table)."""
    inp, fwd = plan.input_chain, plan.forward_chain
    rules = [
        ["-A", inp, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", inp, "-p", "tcp", "-d", plan.gateway, "--dport", str(plan.proxy_port), "-j", "ACCEPT"],
        ["-A", inp, "-j", "DROP"],
    ]
    rules += [["-A", fwd, "-d", cidr, "-j", "DROP"] for cidr in BLOCKED_RANGES_V4]
    return rules


def ipv6_rules(plan: FirewallPlan) -> list[list[str]]:
    return [["-A", plan.input_chain, "-j", "DROP"], ["-A", plan.forward_chain, "-j", "DROP"]]


def jumps(plan: FirewallPlan, forward_hook: str) -> list[tuple[str, list[str]]]:
    """(hook chain, match-and-jump arguments) for each chain of ours."""
    return [
        ("INPUT", ["-i", plan.bridge, "-j", plan.input_chain]),
        (forward_hook, ["-i", plan.bridge, "-j", plan.forward_chain]),
    ]


def restore_script(plan: FirewallPlan, rules: Sequence[Sequence[str]], missing_jumps: Sequence[tuple[str, list[str]]]) -> str:
    """An ``iptables-restore --noflush`` script: declaring a chain empties it, then refill, in one commit."""
    lines = ["*filter", f":{plan.input_chain} - [0:0]", f":{plan.forward_chain} - [0:0]"]
    lines += [" ".join(rule) for rule in rules]
    lines += [" ".join(["-I", hook, "1", *match]) for hook, match in missing_jumps]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class Firewall:
    """Installs (``apply``) and removes (``remove``) the rules for one bridge."""

    def __init__(self, plan: FirewallPlan, run: Runner = subprocess.run) -> None:
        self.plan = plan
        self._subprocess_run = run

    def apply(self) -> None:
        """Install or refresh both walls.

        Raises:
            FirewallUnavailable: IPv4 rules could not be installed; the message says why.
        """
        hook = "DOCKER-USER" if self._ok("iptables", ["-S", "DOCKER-USER"]) else "FORWARD"
        self._apply_family("iptables", ipv4_rules(self.plan), hook)
        try:
            self._apply_family("ip6tables", ipv6_rules(self.plan), "FORWARD")
        except FirewallUnavailable as exc:
            _log.info("egress firewall: IPv6 rules not installed (%s)", exc)

    def remove(self) -> None:
        """Remove our jumps and chains; what is already gone is skipped."""
        for tool in ("iptables", "ip6tables"):
            for hook in ("INPUT", "DOCKER-USER", "FORWARD"):
                for match in (["-i", self.plan.bridge, "-j", self.plan.input_chain],
                              ["-i", self.plan.bridge, "-j", self.plan.forward_chain]):
                    while self._ok(tool, ["-D", hook, *match]):
                        pass
            for chain in (self.plan.input_chain, self.plan.forward_chain):
                if self._ok(tool, ["-F", chain]):
                    self._ok(tool, ["-X", chain])

    def _apply_family(self, tool: str, rules: list[list[str]], forward_hook: str) -> None:
        missing = [(hook, match) for hook, match in jumps(self.plan, forward_hook)
                   if not self._ok(tool, ["-C", hook, *match])]
        script = restore_script(self.plan, rules, missing)
        self._run(f"{tool}-restore", ["--noflush"], script)

    def _ok(self, tool: str, args: list[str]) -> bool:
        try:
            self._run(tool, args)
        except FirewallUnavailable:
            return False
        return True

    def _run(self, tool: str, args: list[str], stdin: str | None = None) -> None:
        # The nf_tables restore has no lock option (it needs none); plain iptables waits for the lock.
        command = [tool, *args] if tool.endswith("-restore") else [tool, "-w", *args]
        try:
            done = self._subprocess_run(
                command, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            raise FirewallUnavailable(f"{tool} is not installed") from None
        except subprocess.TimeoutExpired:
            raise FirewallUnavailable(f"{tool} did not finish within {_TIMEOUT_S}s (xtables lock held?)") from None
        if done.returncode != 0:
            raise FirewallUnavailable(f"{' '.join(command[:3])} failed: {(done.stderr or done.stdout).strip()}")
