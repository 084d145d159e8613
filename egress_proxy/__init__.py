"""The egress proxy: every byte out of a sandbox, checked, credentialed and recorded.

mitmproxy addons run by ``mitmdump -s egress_proxy/addon.py`` (no FastAPI
here). Each request passes, in this order:

    SafeDefaults   (options only: system CA bundle upstream, no flow printing)
    StateLoader    keeps sandboxes, policies and secrets current from the state file
    Identify       source address -> sandbox; unknown addresses get 403
    Policy         allow/deny rules on CONNECT and on every request; no domain
                   fronting; private/metadata addresses only when named; pins the
                   checked address as the connection's address
    Secrets        placeholder -> value for the secret's hosts; injection headers;
                   403 for a placeholder bound elsewhere
    Scrub          secret values -> placeholders in response headers and
                   (streamed, decoded) bodies
    EgressAudit    one JSON line per request

The contract with sandboxd is three things:

- the state file it writes (schema and encryption in ``egress_proxy.state``,
  which also has the writer, :func:`egress_proxy.state.write_state_file`);
- the audit file it reads (line format in ``egress_proxy.audit``);
- the CA it creates at first start (:func:`egress_proxy.ca.ensure_ca`), whose
  directory is the proxy's ``confdir``.

Options: ``egress_state``, ``egress_state_key``, ``egress_audit``, plus
mitmproxy's ``confdir``, ``listen_host``/``listen_port`` and
``ssl_verify_upstream_trusted_ca``. Refusals are 403 responses whose text says
which rule (or the absence of one) refused the request.
"""
