"""The firewall's rules and how they are applied, with iptables replaced by a recorder."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from sandboxd.egress.firewall import Firewall, FirewallPlan, FirewallUnavailable, ipv4_rules, restore_script

PLAN = FirewallPlan(bridge="sbxd0123456789a", gateway="172.30.0.1", proxy_port=3128)


class FakeIptables:
    """Answers like iptables would; records every call. ``present`` are the jumps that already exist."""

    def __init__(self, *, denied: bool = False, present: set[str] | None = None, docker_user: bool = True) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.denied = denied
        self.present = present or set()
        self.docker_user = docker_user

    def __call__(self, command: list[str], *, input: str | None = None, **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((command, input))
        if self.denied:
            return subprocess.CompletedProcess(command, 4, "", "Permission denied (you must be root)")
        args = " ".join(command[1:])
        if "-S DOCKER-USER" in args:
            return subprocess.CompletedProcess(command, 0 if self.docker_user else 1, "", "")
        if "-C " in args:
            found = any(jump in args for jump in self.present)
            return subprocess.CompletedProcess(command, 0 if found else 1, "", "")
        return subprocess.CompletedProcess(command, 0, "", "")

    def scripts(self, tool: str) -> list[str]:
        return [stdin or "" for command, stdin in self.calls if command[0] == tool]


def test_input_chain_lets_through_only_the_proxy_port_then_drops() -> None:
    rules = [" ".join(r) for r in ipv4_rules(PLAN)]
    inp = [r for r in rules if r.startswith("-A sbxd0123456789a-in")]
    assert inp == [
        "-A sbxd0123456789a-in -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A sbxd0123456789a-in -p tcp -d 172.30.0.1 --dport 3128 -j ACCEPT",
        "-A sbxd0123456789a-in -j DROP",
    ]
    forward = [r.split(" -d ")[1].split()[0] for r in rules if r.startswith("-A sbxd0123456789a-fwd")]
    assert {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"} <= set(forward)


def test_apply_replaces_both_chains_in_one_restore_and_adds_missing_jumps() -> None:
    iptables = FakeIptables()
    Firewall(PLAN, run=iptables).apply()
    script = iptables.scripts("iptables-restore")[0]
    assert script.startswith("*filter\n:sbxd0123456789a-in - [0:0]\n:sbxd0123456789a-fwd - [0:0]\n")
    assert script.rstrip().endswith("COMMIT")
    assert "-I INPUT 1 -i sbxd0123456789a -j sbxd0123456789a-in" in script
    assert "-I DOCKER-USER 1 -i sbxd0123456789a -j sbxd0123456789a-fwd" in script
    six = iptables.scripts("ip6tables-restore")[0]
    assert "-A sbxd0123456789a-in -j DROP" in six and "-I FORWARD 1 -i sbxd0123456789a -j sbxd0123456789a-fwd" in six


def test_applying_again_adds_no_second_jump() -> None:
    iptables = FakeIptables(present={"-j sbxd0123456789a-in", "-j sbxd0123456789a-fwd"})
    Firewall(PLAN, run=iptables).apply()
    assert "-I " not in iptables.scripts("iptables-restore")[0]


def test_without_docker_user_the_forward_wall_hooks_into_forward() -> None:
    iptables = FakeIptables(docker_user=False)
    Firewall(PLAN, run=iptables).apply()
    assert "-I FORWARD 1 -i sbxd0123456789a -j sbxd0123456789a-fwd" in iptables.scripts("iptables-restore")[0]


def test_no_privilege_is_reported_not_ignored() -> None:
    with pytest.raises(FirewallUnavailable, match="you must be root"):
        Firewall(PLAN, run=FakeIptables(denied=True)).apply()


def test_missing_iptables_is_reported() -> None:
    def missing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(command[0])

    with pytest.raises(FirewallUnavailable, match="not installed"):
        Firewall(PLAN, run=missing).apply()


def test_remove_deletes_jumps_until_none_is_left_then_the_chains() -> None:
    deleted: list[str] = []

    def iptables(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        args = " ".join(command)
        # Two copies of the INPUT jump exist; every other deletion finds nothing.
        if "-D INPUT" in args and args.endswith("-in") and deleted.count(args) < 2:
            deleted.append(args)
            return subprocess.CompletedProcess(command, 0, "", "")
        ok = " -F " in args or " -X " in args
        if ok:
            deleted.append(args)
        return subprocess.CompletedProcess(command, 0 if ok else 1, "", "")

    Firewall(PLAN, run=iptables).remove()
    assert sum("-D INPUT" in d and d.startswith("iptables ") for d in deleted) == 2
    assert "iptables -w -X sbxd0123456789a-in" in deleted and "iptables -w -X sbxd0123456789a-fwd" in deleted


def test_restore_script_is_one_transaction() -> None:
    script = restore_script(PLAN, [["-A", "x", "-j", "DROP"]], [])
    assert script.count("COMMIT") == 1 and script.splitlines()[0] == "*filter"
