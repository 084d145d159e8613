"""The blocking SDK against a fake daemon: what it sends, what it hands back, when it deletes."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandboxd.client import Client, ExitEvent, OutputEvent, Sandbox
from sandboxd.errors import InvalidRequest, NotFound, SandboxdError

from .conftest import SANDBOX_ID, FakeDaemon, sandbox_body, sse

BASE = f"/v1/sandboxes/{SANDBOX_ID}"
EXIT = {
    "exit_code": 4,
    "encoding": "base64",
    "stdout_truncated": False,
    "stderr_truncated": False,
    "duration_ms": 12.5,
    "timed_out": False,
    "signal": None,
}


@pytest.fixture
def client(fake: FakeDaemon) -> Iterator[Client]:
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(fake)) as c:
        yield c


def _json(fake: FakeDaemon, index: int = -1) -> dict:
    return json.loads(fake.bodies[index])


def test_create_sends_the_spec_and_deletes_on_exit(client: Client, fake: FakeDaemon) -> None:
    with client.sandboxes.create(cpus=0.5, memory_mb=256, labels={"team": "a"}, env={"A": "1"}) as sbx:
        assert (sbx.id, sbx.state) == (SANDBOX_ID, "running")
        assert _json(fake, 0) == {"cpus": 0.5, "memory_mb": 256, "labels": {"team": "a"}, "env": {"A": "1"}}
    assert fake.calls()[-1] == ("DELETE", BASE)


def test_exit_by_exception_still_deletes(client: Client, fake: FakeDaemon) -> None:
    with pytest.raises(RuntimeError), client.sandboxes.create():
        raise RuntimeError("boom")
    assert fake.calls()[-1] == ("DELETE", BASE)


def test_keep_and_connected_sandboxes_are_not_deleted(client: Client, fake: FakeDaemon) -> None:
    with client.sandboxes.create(keep=True):
        pass
    with client.sandboxes.get(SANDBOX_ID):
        pass
    with Sandbox.connect(SANDBOX_ID, client=client):
        pass
    assert ("DELETE", BASE) not in fake.calls()


def test_deleting_a_sandbox_already_gone_is_fine(client: Client, fake: FakeDaemon) -> None:
    fake.on("DELETE", BASE, httpx.Response(404, json={"error": "not_found", "message": "gone"}))
    with client.sandboxes.create():
        pass


def test_bad_arguments_fail_before_any_request(client: Client, fake: FakeDaemon) -> None:
    with pytest.raises(InvalidRequest, match="memory_mb"):
        client.sandboxes.create(memory_mb=-1)
    with pytest.raises(InvalidRequest, match="not a valid environment variable name"):
        client.sandboxes.create(env={"1BAD": "x"})
    assert fake.requests == []


def test_list_filters_by_state_and_labels(client: Client, fake: FakeDaemon) -> None:
    fake.on("GET", "/v1/sandboxes", {"sandboxes": [sandbox_body(), sandbox_body(state="paused")]})
    found = client.sandboxes.list(state="running", labels={"a": "1", "b": "2"})
    assert [s.state for s in found] == ["running", "paused"]
    params = fake.requests[-1].url.params
    assert params["state"] == "running" and params.get_list("label") == ["a=1", "b=2"]


def test_refresh_updates_the_state(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    fake.on("GET", BASE, sandbox_body(state="paused"))
    assert sbx.refresh().state == "paused"


def test_a_missing_sandbox_is_not_found(client: Client, fake: FakeDaemon) -> None:
    fake.on("GET", BASE, httpx.Response(404, json={"error": "not_found", "message": f"no sandbox {SANDBOX_ID}"}))
    with pytest.raises(NotFound, match=SANDBOX_ID):
        client.sandboxes.get(SANDBOX_ID)


def test_ids_cannot_walk_to_other_endpoints(client: Client) -> None:
    with pytest.raises(InvalidRequest):
        client.sandboxes.get("..")


def test_exec_shell_string_argv_and_binary_stdin(client: Client, fake: FakeDaemon) -> None:
    result_body = {**EXIT, "stdout": "hi\n", "stderr": "", "encoding": "utf-8", "exit_code": 0}
    fake.on("POST", f"{BASE}/exec", result_body)
    sbx = client.sandboxes.get(SANDBOX_ID)
    result = sbx.exec("echo hi", cwd="/tmp", env={"X": "1"}, timeout=5)
    assert (result.exit_code, result.stdout, result.duration_ms) == (0, "hi\n", 12.5)
    assert _json(fake) == {"command": "echo hi", "cwd": "/tmp", "env": {"X": "1"}, "timeout_s": 5.0}
    # The answer may take the command's own timeout: the read timeout must allow for it.
    assert fake.requests[-1].extensions["timeout"]["read"] > 5
    sbx.exec(["cat"], stdin=b"\x00\xff")
    assert _json(fake)["argv"] == ["cat"] and base64.b64decode(_json(fake)["stdin_b64"]) == b"\x00\xff"
    sbx.exec(["cat"], stdin="text")
    assert _json(fake)["stdin"] == "text"


def _chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_exec_stream_yields_typed_events_from_split_reads(client: Client, fake: FakeDaemon) -> None:
    body = sse(
        ("stdout", {"data": base64.b64encode(b"one\n").decode()}),
        ("stderr", {"data": base64.b64encode(b"\xff two\n").decode()}),
        ("exit", EXIT),
    )
    fake.on("POST", f"{BASE}/exec/stream", lambda _r: httpx.Response(200, content=_chunked(body, 7)))
    events = list(client.sandboxes.get(SANDBOX_ID).exec_stream(["sh", "-c", "x"]))
    assert events[:2] == [OutputEvent("stdout", b"one\n"), OutputEvent("stderr", b"\xff two\n")]
    assert isinstance(events[2], ExitEvent) and events[2].exit_code == 4
    assert _json(fake)["encoding"] == "base64"


def test_exec_stream_error_event_and_cut_stream_raise(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    error = sse(("error", {"error": "sandbox_unavailable", "message": "the sandbox stopped answering"}))
    fake.on("POST", f"{BASE}/exec/stream", httpx.Response(200, content=error))
    with pytest.raises(SandboxdError, match="stopped answering"):
        list(sbx.exec_stream("true"))
    cut = sse(("stdout", {"data": "eA=="}))
    fake.on("POST", f"{BASE}/exec/stream", httpx.Response(200, content=cut))
    with pytest.raises(SandboxdError, match="ended before the command did"):
        list(sbx.exec_stream("true"))


def test_processes(client: Client, fake: FakeDaemon) -> None:
    proc = {"id": "prc_1", "state": "running", "pid": 40, "argv": ["sleep", "9"], "cwd": "/workspace"}
    done = {**proc, "state": "exited", "exit_code": 0}
    fake.on("POST", f"{BASE}/processes", httpx.Response(201, json=proc))
    fake.on("GET", f"{BASE}/processes", {"processes": [proc]})
    fake.on("POST", f"{BASE}/processes/prc_1/stdin", 204)
    fake.on("POST", f"{BASE}/processes/prc_1/signal", done)
    fake.on("POST", f"{BASE}/processes/prc_1/wait", done)
    output = {
        "stdout": "a",
        "stderr": "",
        "stdout_offset": 1,
        "stderr_offset": 0,
        "state": "running",
        "encoding": "utf-8",
    }
    fake.on("GET", f"{BASE}/processes/prc_1/output", output)
    procs = client.sandboxes.get(SANDBOX_ID).processes

    started = procs.start("sleep 9", name="sleeper")
    assert started.id == "prc_1" and _json(fake) == {"command": "sleep 9", "name": "sleeper"}
    assert [p.pid for p in procs.list()] == [40]
    procs.write_stdin("prc_1", "line\n", eof=True)
    assert fake.bodies[-1] == b"line\n" and fake.requests[-1].url.params["eof"] == "true"
    out = procs.output("prc_1", stdout_offset=0)
    assert (out.stdout, out.stdout_offset) == ("a", 1)
    assert procs.kill("prc_1").state == "exited" and _json(fake) == {"signal": "KILL"}
    assert procs.wait("prc_1", timeout=2).exit_code == 0
    assert fake.requests[-1].url.params["timeout"] == "2"


def test_file_calls(client: Client, fake: FakeDaemon, tmp_path: Path) -> None:
    info = {"name": "a.txt", "path": "/workspace/a.txt", "type": "file", "size": 3, "mode": 420, "mtime": 1.0}
    fake.on("GET", f"{BASE}/files/content", httpx.Response(200, content=b"abc"))
    fake.on("PUT", f"{BASE}/files/content", info)
    fake.on("GET", f"{BASE}/files/stat", info)
    fake.on("GET", f"{BASE}/files", {"path": "/workspace", "entries": [info]})
    fake.on("POST", f"{BASE}/files/mkdir", httpx.Response(201, json={**info, "type": "dir"}))
    fake.on("POST", f"{BASE}/files/move", info)
    fake.on("DELETE", f"{BASE}/files", 204)
    files = client.sandboxes.get(SANDBOX_ID).files

    assert files.read("a.txt") == b"abc"
    assert b"".join(files.read_stream("a.txt")) == b"abc"
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 600_000)
    seen: list[int] = []
    with source.open("rb") as f:
        assert files.write("a.txt", f, mode=0o600, progress=seen.append).mode == 0o644
    assert fake.bodies[-1] == b"x" * 600_000 and fake.requests[-1].url.params["mode"] == "0600"
    assert seen[-1] == 600_000 and len(seen) > 1
    assert files.stat("a.txt").mode_octal == "0644"
    assert [e.name for e in files.list()] == ["a.txt"]
    assert files.exists("a.txt")
    files.mkdir("d", mode=0o700)
    assert _json(fake) == {"path": "d", "parents": True, "mode": "0700"}
    files.move("a.txt", "b.txt", overwrite=True)
    assert _json(fake) == {"src": "a.txt", "dst": "b.txt", "overwrite": True}
    files.remove("d", recursive=True)
    assert fake.requests[-1].url.params["recursive"] == "true"


def test_upload_dir_sends_a_tar_of_the_contents(client: Client, fake: FakeDaemon, tmp_path: Path) -> None:
    fake.on("PUT", f"{BASE}/archive", {"extracted": 2})
    (tmp_path / "proj" / "src").mkdir(parents=True)
    (tmp_path / "proj" / "src" / "main.py").write_text("print(1)\n")
    (tmp_path / "proj" / "README").write_text("hi\n")
    client.sandboxes.get(SANDBOX_ID).files.upload_dir(tmp_path / "proj", "/workspace/up")
    assert fake.requests[-1].url.params["path"] == "/workspace/up"
    with tarfile.open(fileobj=io.BytesIO(fake.bodies[-1])) as tar:
        assert sorted(tar.getnames()) == ["README", "src", "src/main.py"]
        assert tar.extractfile("src/main.py").read() == b"print(1)\n"


def test_download_dir_extracts_and_reports_what_it_refused(client: Client, fake: FakeDaemon, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("./proj/a.txt", "../evil.txt"):
            member = tarfile.TarInfo(name)
            member.size = 2
            tar.addfile(member, io.BytesIO(b"ok"))
    fake.on("GET", f"{BASE}/archive", lambda _r: httpx.Response(200, content=_chunked(buf.getvalue(), 100)))
    skipped = client.sandboxes.get(SANDBOX_ID).files.download_dir("/workspace", tmp_path / "out")
    assert (tmp_path / "out" / "proj" / "a.txt").read_bytes() == b"ok"
    assert not (tmp_path / "evil.txt").exists()
    assert len(skipped) == 1 and skipped[0].startswith("../evil.txt")


def test_sandbox_create_without_a_client_uses_the_environment(
    fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOXD_URL", "http://env.test")
    monkeypatch.setenv("SANDBOXD_API_KEY", "env-key")
    transport = httpx.MockTransport(fake)
    real_client = httpx.Client

    def with_fake_transport(*args: object, **kwargs: object) -> httpx.Client:
        kwargs["transport"] = transport
        return real_client(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx, "Client", with_fake_transport)
    with Sandbox.create(image="sandboxd/sandbox:latest") as sbx:
        assert sbx.client.url == "http://env.test"
    assert fake.calls() == [("POST", "/v1/sandboxes"), ("DELETE", BASE)]
    assert sbx.client._http._client.is_closed


def test_admin_calls(client: Client, fake: FakeDaemon) -> None:
    key = {"id": "key_1", "tenant_id": "tnt_1", "name": "ci", "admin": False, "created_at": 1.0, "key": "sbd_x"}
    fake.on("POST", "/v1/tenants/tnt_1/keys", httpx.Response(201, json=key))
    fake.on("DELETE", "/v1/keys/key_1", 204)
    fake.on("GET", "/v1/audit", {"records": []})
    fake.on("GET", "/v1/audit/verify", {"ok": True, "checked": 10, "first_bad_seq": None, "problem": None})
    created = client.keys.create("tnt_1", name="ci")
    assert created.key == "sbd_x" and "sbd_x" not in repr(created)
    client.keys.revoke("key_1")
    client.audit.query(sandbox_id=SANDBOX_ID, limit=5)
    assert dict(fake.requests[-1].url.params) == {"sandbox_id": SANDBOX_ID, "limit": "5"}
    assert client.audit.verify().checked == 10


def test_write_a_local_path_streams_the_file(client: Client, fake: FakeDaemon, tmp_path: Path) -> None:
    fake.on("PUT", f"{BASE}/files/content", {"name": "p", "type": "file", "size": 5})
    source = tmp_path / "p"
    source.write_bytes(b"12345")
    client.sandboxes.get(SANDBOX_ID).files.write("p", source)
    assert fake.bodies[-1] == b"12345"
    # A str is content, never a file name.
    client.sandboxes.get(SANDBOX_ID).files.write("p", str(source))
    assert fake.bodies[-1] == str(source).encode()
