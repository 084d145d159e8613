from __future__ import annotations

from pathlib import Path

from mitmproxy.test import taddons

import egress_proxy.addon
from egress_proxy.audit import EgressAudit
from egress_proxy.defaults import SafeDefaults
from egress_proxy.identify import Identify
from egress_proxy.injection import Secrets
from egress_proxy.loader import StateLoader
from egress_proxy.policy import Policy
from egress_proxy.scrub import Scrub


def test_addons_are_in_the_order_they_act() -> None:
    kinds = [type(a) for a in egress_proxy.addon.make_addons()]
    assert kinds == [SafeDefaults, StateLoader, Identify, Policy, Secrets, Scrub, EgressAudit]


def test_loader_and_identify_share_one_state_holder() -> None:
    addons = egress_proxy.addon.make_addons()
    assert addons[1]._holder is addons[2]._holder  # type: ignore[attr-defined]


def test_mitmproxy_loads_the_script_and_its_options(tmp_path: Path) -> None:
    with taddons.context() as tctx:
        tctx.script(str(Path(egress_proxy.addon.__file__)))
        # Updating an option no addon registered raises, so this proves the script's addons loaded.
        tctx.options.update(egress_state=str(tmp_path / "state.json"), egress_audit=str(tmp_path / "audit.jsonl"))
        assert tctx.options.egress_state == str(tmp_path / "state.json")


def test_safe_defaults_use_the_system_bundle(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "bundle.crt"
    bundle.write_text("")
    monkeypatch.setattr("egress_proxy.defaults.SYSTEM_CA_BUNDLE", str(bundle))
    defaults = SafeDefaults()
    with taddons.context(defaults) as tctx:
        tctx.configure(defaults)
        assert tctx.options.ssl_verify_upstream_trusted_ca == str(bundle)
        tctx.configure(defaults, ssl_verify_upstream_trusted_ca="/custom.pem")
        assert tctx.options.ssl_verify_upstream_trusted_ca == "/custom.pem"


def test_safe_defaults_turn_off_raw_tcp_and_flow_printing() -> None:
    defaults = SafeDefaults()
    with taddons.context(defaults) as tctx:
        tctx.configure(defaults, rawtcp=True)
        assert tctx.options.rawtcp is False
