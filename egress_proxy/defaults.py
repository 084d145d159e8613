"""SafeDefaults: mitmproxy options the egress proxy needs whatever the command line says.

- Upstream certificates are verified against the system CA bundle unless
  ``ssl_verify_upstream_trusted_ca`` names another file (mitmproxy's own
  default is the certifi bundle, which does not follow the host's trust).
- mitmdump's flow printer is silenced: at its default detail it prints
  request URLs after the proxy put secrets into their query strings.
- Raw TCP relaying is off: a tunnel that carries something other than HTTP
  would skip method and path rules, secret placement and scrubbing; without
  ``rawtcp`` mitmproxy treats it as bad HTTP and closes it.
- ``ssl_insecure`` is refused loudly in the log: it would let anyone on the
  path read every injected credential.
"""

from __future__ import annotations

import logging
import os

from mitmproxy import ctx

logger = logging.getLogger(__name__)

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class SafeDefaults:
    def configure(self, updated: set[str]) -> None:
        changes: dict[str, object] = {}
        if not ctx.options.ssl_verify_upstream_trusted_ca and os.path.exists(SYSTEM_CA_BUNDLE):
            changes["ssl_verify_upstream_trusted_ca"] = SYSTEM_CA_BUNDLE
        if ctx.options.rawtcp:
            changes["rawtcp"] = False
        if getattr(ctx.options, "flow_detail", 0) != 0:
            changes["flow_detail"] = 0
        if ctx.options.ssl_insecure:
            logger.error("ssl_insecure is set: upstream certificates are NOT verified; injected secrets are exposed")
        if changes:
            ctx.options.update(**changes)
