"""The script mitmdump loads: the egress proxy's addons, in the order they act on a request.

    mitmdump --mode regular --listen-host 0.0.0.0 --listen-port 3128 \\
        --set confdir=/data/ca --set egress_state=/data/egress-state.json \\
        --set egress_audit=/data/egress-audit.jsonl -s egress_proxy/addon.py

mitmproxy calls each hook on every addon in list order, so a later addon sees
what an earlier one decided (and each checks whether the request was already
answered). Identify must come first and EgressAudit last.
"""

from __future__ import annotations

import sys
from pathlib import Path

# mitmdump loads this file by path; make the package importable from a plain checkout too.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from egress_proxy.audit import EgressAudit  # noqa: E402
from egress_proxy.defaults import SafeDefaults  # noqa: E402
from egress_proxy.identify import Identify  # noqa: E402
from egress_proxy.injection import Secrets  # noqa: E402
from egress_proxy.loader import StateLoader  # noqa: E402
from egress_proxy.policy import Policy  # noqa: E402
from egress_proxy.scrub import Scrub  # noqa: E402
from egress_proxy.state import StateHolder  # noqa: E402


def make_addons() -> list[object]:
    holder = StateHolder()
    return [
        SafeDefaults(),
        StateLoader(holder),
        Identify(holder),
        Policy(),
        Secrets(),
        Scrub(),
        EgressAudit(),
    ]


addons = make_addons()
