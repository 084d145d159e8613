"""The audit trail records every state change and tells when it was tampered with."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import httpx


def test_actions_are_recorded_without_secrets(admin: httpx.Client, sandbox: dict, sh) -> None:
    sid = sandbox["id"]
    sh(sid, "echo hello", stdin="top secret stdin")
    admin.put(f"/v1/sandboxes/{sid}/files/content", params={"path": "f.txt"}, content=b"file body")
    records = admin.get("/v1/audit", params={"sandbox_id": sid}).json()["records"]
    actions = [r["action"] for r in records]
    assert "sandbox.create" in actions and "exec" in actions and "file.write" in actions
    text = json.dumps(records)
    assert "top secret stdin" not in text and "file body" not in text
    write = next(r for r in records if r["action"] == "file.write")
    assert write["args"]["path"] == "f.txt" and write["key_id"] and write["tenant_id"]


def test_other_tenants_do_not_see_my_audit(tenant_client: httpx.Client, sandbox: dict) -> None:
    records = tenant_client.get("/v1/audit", params={"sandbox_id": sandbox["id"]}).json()["records"]
    assert records == []


def _verify(data_dir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandboxd", "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_edited_record_is_detected(daemon, admin: httpx.Client, sandbox: dict, sh) -> None:
    sh(sandbox["id"], "true")
    ok = _verify(daemon.data_dir)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    assert admin.get("/v1/audit/verify").json()["ok"] is True

    db = sqlite3.connect(daemon.data_dir / "sandboxd.db")
    try:
        seq, args = db.execute("SELECT seq, args FROM audit WHERE action = 'exec' ORDER BY seq DESC LIMIT 1").fetchone()
        db.execute("UPDATE audit SET args = ? WHERE seq = ?", (args.replace("true", "rm -rf /"), seq))
        db.commit()
        broken = _verify(daemon.data_dir)
        assert broken.returncode == 1
        assert str(seq) in broken.stderr
        assert admin.get("/v1/audit/verify").json()["first_bad_seq"] == seq
    finally:
        db.execute("UPDATE audit SET args = ? WHERE seq = ?", (args, seq))
        db.commit()
        db.close()
    assert _verify(daemon.data_dir).returncode == 0
