"""What code inside a sandbox can and cannot do: the secure defaults, seen from inside."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def small(admin: httpx.Client):
    created = []

    def make(**limits: object) -> str:
        response = admin.post("/v1/sandboxes", json=limits)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
        return created[-1]

    yield make
    for sid in created:
        admin.delete(f"/v1/sandboxes/{sid}")


def test_unprivileged_user_without_capabilities(sandbox: dict, sh) -> None:
    sid = sandbox["id"]
    assert sh(sid, "id -u")["stdout"] == "1000\n"
    status = dict(
        line.split(":\t", 1) for line in sh(sid, "cat /proc/self/status")["stdout"].splitlines() if ":\t" in line
    )
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["CapBnd"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2", "the engine's default seccomp profile must be on"
    assert sh(sid, "su -c true root </dev/null")["exit_code"] != 0


def test_no_network_but_the_proxy(daemon, sandbox: dict, sh) -> None:
    """One interface on the sandbox network; of everything tried directly, only the proxy port answers."""
    probe = (
        "import os, socket\n"
        "from urllib.parse import urlsplit\n"
        "proxy = urlsplit(os.environ['HTTPS_PROXY'])\n"
        f"targets = [('1.1.1.1', 80), ('169.254.169.254', 80), (proxy.hostname, {daemon.port}), (proxy.hostname, 22)]\n"
        "for target in targets + [(proxy.hostname, proxy.port)]:\n"
        "    try:\n"
        "        socket.create_connection(target, timeout=2).close()\n"
        "        print('connected', *target)\n"
        "    except OSError as e:\n"
        "        print('refused', *target)\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "    print('resolved')\n"
        "except OSError:\n"
        "    print('no dns')\n"
    )
    result = sh(sandbox["id"], f"python3 -c \"{probe}\"")
    lines = result["stdout"].splitlines()
    connected = [line for line in lines if line.startswith("connected")]
    assert len(connected) == 1 and connected[0].endswith(" 3128"), result
    assert "no dns" in lines, result
    interfaces = sh(sandbox["id"], "ls /sys/class/net")["stdout"].split()
    assert interfaces == ["eth0", "lo"]


def test_fork_bomb_hits_the_pids_limit(small, sh) -> None:
    sid = small(pids=64)
    counter = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(n, e.errno, flush=True)\n"
    )
    result = sh(sid, f"python3 -c '{counter}'", timeout_s=10)
    forks, errno = map(int, result["stdout"].split()[:2])
    assert forks < 64 and errno == 11  # EAGAIN from the pids cgroup
    bomb = sh(sid, ":(){ :|:& };:", timeout_s=3)
    assert bomb["timed_out"] is True
    assert sh(sid, "echo still here")["stdout"] == "still here\n"


def test_memory_hog_is_killed_and_others_carry_on(daemon, small, sh) -> None:
    hog = small(memory_mb=128)
    bystander = small()
    result = sh(hog, "python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'", timeout_s=60)
    assert result["exit_code"] != 0 and "536870912" not in result["stdout"]
    assert httpx.get(f"{daemon.url}/v1/health").status_code == 200
    assert sh(bystander, "echo fine")["stdout"] == "fine\n"
    assert sh(hog, "echo recovered")["stdout"] == "recovered\n"
