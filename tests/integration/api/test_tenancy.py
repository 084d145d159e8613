"""Authentication and tenant isolation: another tenant's sandbox is as good as missing."""

from __future__ import annotations

import httpx


def test_requests_without_a_valid_key_are_refused(daemon) -> None:
    url = f"{daemon.url}/v1/sandboxes"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Basic abc"}).status_code == 401
    bad = httpx.get(url, headers={"Authorization": "Bearer sbd_nope_nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthenticated"
    assert httpx.get(f"{daemon.url}/v1/health").status_code == 200


def test_other_tenant_cannot_see_or_touch(admin: httpx.Client, tenant_client: httpx.Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    assert sid not in {s["id"] for s in tenant_client.get("/v1/sandboxes").json()["sandboxes"]}
    for method, path, kwargs in [
        ("GET", f"/v1/sandboxes/{sid}", {}),
        ("POST", f"/v1/sandboxes/{sid}/exec", {"json": {"command": "id"}}),
        ("GET", f"/v1/sandboxes/{sid}/files/content", {"params": {"path": "/etc/hostname"}}),
        ("PUT", f"/v1/sandboxes/{sid}/files/content", {"params": {"path": "x"}, "content": b"x"}),
        ("GET", f"/v1/sandboxes/{sid}/processes", {}),
        ("DELETE", f"/v1/sandboxes/{sid}", {}),
    ]:
        response = tenant_client.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    missing = tenant_client.get("/v1/sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa")
    assert missing.status_code == 404
    assert admin.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"


def test_non_admin_cannot_use_admin_endpoints(tenant_client: httpx.Client) -> None:
    assert tenant_client.post("/v1/tenants", json={"name": "sneaky"}).status_code == 403
    assert tenant_client.get("/v1/keys").status_code == 403


def test_revoked_key_stops_working(daemon, admin: httpx.Client) -> None:
    tenant = admin.post("/v1/tenants", json={"name": "revokee"}).json()
    key = admin.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "temp"}).json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert httpx.get(f"{daemon.url}/v1/sandboxes", headers=headers).status_code == 200
    assert admin.delete(f"/v1/keys/{key['id']}").status_code == 204
    assert httpx.get(f"{daemon.url}/v1/sandboxes", headers=headers).status_code == 401
