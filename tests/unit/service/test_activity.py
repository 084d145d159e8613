"""The idle clock: touches, calls in flight, and a fresh start after a restart."""

from __future__ import annotations

from sandboxd.service.activity import Activity


def test_activity() -> None:
    now = [100.0]
    activity = Activity(clock=lambda: now[0])
    assert activity.last_active("sbx_a") == 100.0, "after a start, everything counts as just used"
    assert activity.last_active("sbx_a", not_before=150.0) == 150.0
    now[0] = 200.0
    activity.touch("sbx_a")
    assert activity.last_active("sbx_a") == 200.0
    activity.begin("sbx_a")
    activity.begin("sbx_a")
    activity.end("sbx_a")
    assert activity.busy("sbx_a")
    now[0] = 300.0
    activity.end("sbx_a")
    assert not activity.busy("sbx_a") and activity.last_active("sbx_a") == 300.0
    activity.end("sbx_a")  # more ends than begins never goes negative
    assert not activity.busy("sbx_a")
    activity.forget("sbx_a")
    assert activity.last_active("sbx_a") == 100.0
