"""The daemon's side of egress: the only way out of a sandbox is the egress proxy.

    network     one internal Docker bridge per daemon: no route out, no DNS out,
                no traffic between sandboxes
    firewall    host rules on that bridge: a sandbox reaches the proxy port and
                nothing else on the host, and never private or metadata ranges
    proxy       mitmdump (``egress_proxy``) as a supervised child process
    keys        the AES-GCM key files (state file, secrets at rest)
    policy      rules checked with the proxy's own parser
    addresses   sandbox addresses, chosen round the subnet
    state       the proxy's state file, rebuilt from the store on every change
    sandbox_env what a sandbox gets: proxy variables, the CA, secret placeholders
    log         the proxy's JSONL audit, ingested into the store exactly once
    controller  ties them to sandbox lifecycle events
"""
