"""Domain errors as tool-error text a model can act on.

A model cannot read a status code, and "404" tells it nothing about what to try
next; so each error class gets a sentence that names the next step (which tool to
call, or that a human must act). The lookup walks the class's MRO, so a subclass
added to ``sandboxd.errors`` later gets its parent's advice until it is given its
own: supporting a new error is one more entry in ``_NEXT_STEP``. Where one class
covers cases that need different next steps (a snapshot in use, a sandbox without
network), a pattern of the message in ``_BY_MESSAGE`` picks the advice first.

A host refused by the egress proxy is not an error of a tool at all: the command
that tried it failed inside the sandbox. ``egress_advice`` turns what the proxy
wrote into its output (or recorded in the egress log) into the same kind of text.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import ValidationError

from sandboxd import errors

_NEXT_STEP: Final[dict[type[errors.SandboxdError], str]] = {
    errors.InvalidRequest: "Fix the arguments and call the tool again.",
    errors.PayloadTooLarge: (
        "Send less at once: split the content into several files, or produce it inside the sandbox "
        "with run_command."
    ),
    errors.Unauthenticated: (
        "The API key of this MCP connection was refused; a human must fix the key in the MCP client's configuration."
    ),
    errors.Forbidden: "This API key may not do that; ask a human if it is needed.",
    errors.Conflict: (
        "Nothing was changed: the target is in the wrong state for this. Check its state (list_sandboxes for a "
        "sandbox, read_process_output for a process) and act on what the message says."
    ),
    errors.AlreadyExists: "Pick another path, or remove the existing one first (run_command with rm).",
    errors.IsADirectory: "That path is a directory: use list_directory on it, or name a file inside it.",
    errors.NotADirectory: "That path is a file, not a directory: use read_file on it, or use its parent directory.",
    errors.PermissionDenied: (
        "Everything in a sandbox runs as the unprivileged user 'sandbox' (uid 1000) without root or sudo; "
        "work under /workspace, /tmp or /home/sandbox instead."
    ),
    errors.ImageNotFound: (
        "Leave 'image' out to use the default sandbox image, or ask a human to build that image on the sandboxd host."
    ),
    errors.SandboxUnavailable: (
        "The sandbox did not answer; try again in a few seconds. If it keeps failing, tell a human, or create a "
        "new sandbox (files in this one would not carry over)."
    ),
    errors.RuntimeFailure: (
        "The container engine on the sandboxd host failed; try again shortly, and tell a human if it persists."
    ),
    errors.SandboxdError: (
        "This is a fault in sandboxd, not in the request; try again, and tell a human if it persists."
    ),
}

_NOT_FOUND_SANDBOX: Final = "Call list_sandboxes to see the sandboxes you have, or create_sandbox to make one."
_NOT_FOUND_PROCESS: Final = "Check the process id: use the 'id' that start_process returned, in the same sandbox."
_NOT_FOUND_PATH: Final = (
    "Check the path: list_directory shows what exists (relative paths start at /workspace); "
    "for a command, check that the program is installed (run_command with 'command -v NAME')."
)

_NOT_FOUND_SNAPSHOT: Final = "Call list_snapshots to see the snapshots you have, or snapshot_sandbox to take one."
_NOT_FOUND_SECRET: Final = "Secrets are stored by a human (`sandboxd secrets set`); ask one if the sandbox needs it."

_MAX_VALIDATION_ITEMS: Final = 5
_MISSING_SNAPSHOT: Final = re.compile(r"\bno snapshot\b|\bsnapshot snp_\S* does not exist")
_MISSING_SECRET: Final = re.compile(r"\bno secret\b")
_MISSING_SANDBOX: Final = re.compile(r"\bno sandbox\b|\bsandbox sbx_")
_MISSING_PROCESS: Final = re.compile(r"\bno process\b")

# Cases within one class that need a next step of their own, by what the message says.
_BY_MESSAGE: Final[tuple[tuple[type[errors.SandboxdError], re.Pattern[str], str], ...]] = (
    (
        errors.Conflict,
        re.compile(r"snapshot \S+ is in use"),
        "The sandboxes or snapshots named were made from it: delete those first (delete_sandbox), "
        "or keep this snapshot.",
    ),
    (
        errors.Conflict,
        re.compile(r"created without egress"),
        "This sandbox has no network at all and never will; create a new sandbox (create_sandbox) if you need one.",
    ),
    (
        errors.Conflict,
        re.compile(r"image of snapshot \S+ is missing"),
        "This snapshot can no longer be used on this host; ask a human to import it again, or use another one "
        "(list_snapshots).",
    ),
    (
        errors.InvalidRequest,
        re.compile(r"has no snapshot to compare with"),
        "Take a snapshot first with snapshot_sandbox, then call show_changes after making changes; or pass "
        "since=<snapshot id> (list_snapshots).",
    ),
)

# What the egress proxy writes when it refuses a request: in the body of its answer
# ("sandboxd egress: blocked CONNECT host:443: ...", "... blocked GET http://host/path: ...")
# and in the status line clients print ("403 blocked by sandboxd egress: ... matches host:443 ...").
_REFUSED_TARGET: Final = re.compile(
    r"sandboxd egress: blocked (?:CONNECT (?P<connect>\[[^\]]+\]|[^\s:\]]+)"
    r"|[A-Z]+ [a-z][a-z0-9+.-]*://(?P<url>\[[^\]]+\]|[^\s/:?#]+))"
)
_REFUSED_STATUS: Final = re.compile(r"blocked by sandboxd egress: [^\n]*?(?P<host>\[[^\]]+\]|[\w*.-]+):\d+")
_STATUS_403: Final = re.compile(r"\b403\b")
_MAX_HOSTS_NAMED: Final = 5


def next_step(exc: errors.SandboxdError) -> str:
    """The advice for ``exc``: that of its own class, else of its nearest ancestor that has one."""
    for cls, pattern, step in _BY_MESSAGE:
        if isinstance(exc, cls) and pattern.search(exc.message):
            return step
    if isinstance(exc, errors.NotFound):
        return _not_found_step(exc.message)
    for cls in type(exc).__mro__:
        step = _NEXT_STEP.get(cls)
        if step is not None:
            return step
    return _NEXT_STEP[errors.SandboxdError]


def describe_error(exc: errors.SandboxdError) -> str:
    """The whole tool-error text: what went wrong, then what to do about it."""
    return f"{_sentence(exc.message)} {next_step(exc)}"


def describe_invalid_arguments(exc: ValidationError) -> str:
    """Pydantic's complaint about arguments, cut to the field names and reasons a model needs."""
    parts = []
    for err in exc.errors()[:_MAX_VALIDATION_ITEMS]:
        field = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            reason = "unknown argument (check the spelling against the tool's input schema)"
        parts.append(f"{field}: {reason}")
    if exc.error_count() > _MAX_VALIDATION_ITEMS:
        parts.append(f"and {exc.error_count() - _MAX_VALIDATION_ITEMS} more")
    return f"invalid arguments: {'; '.join(parts)}. {_NEXT_STEP[errors.InvalidRequest]}"


def _not_found_step(message: str) -> str:
    # The services say "no sandbox sbx_..." / "sandbox sbx_... does not exist", "no snapshot ...",
    # "no secret ..." and "no process ..."; anything else not found is a path or a program.
    if _MISSING_SNAPSHOT.search(message):
        return _NOT_FOUND_SNAPSHOT
    if _MISSING_SECRET.search(message):
        return _NOT_FOUND_SECRET
    if _MISSING_SANDBOX.search(message):
        return _NOT_FOUND_SANDBOX
    if _MISSING_PROCESS.search(message):
        return _NOT_FOUND_PROCESS
    return _NOT_FOUND_PATH


def _sentence(message: str) -> str:
    text = message.strip() or "the request failed"
    return text if text.endswith((".", "!", "?")) else text + "."


# --- egress refusals ---------------------------------------------------------------------------


def refused_hosts(text: str) -> list[str]:
    """Hosts the egress proxy refused, as its refusals in a command's output name them (first seen first)."""
    found: dict[str, None] = {}
    for match in _REFUSED_TARGET.finditer(text):
        found.setdefault((match.group("connect") or match.group("url")).strip("[]").lower(), None)
    for match in _REFUSED_STATUS.finditer(text):
        found.setdefault(match.group("host").strip("[]").lower(), None)
    return list(found)


def looks_refused(text: str) -> bool:
    """Output that may tell of a refusal without naming the host ("CONNECT tunnel failed, response 403")."""
    return "sandboxd egress" in text or _STATUS_403.search(text) is not None


def egress_advice(hosts: list[str]) -> str:
    """What to tell a model whose command was refused a connection by the egress policy."""
    if not hosts:
        return (
            "A connection may have been refused by this sandbox's egress policy. Call show_egress_log with "
            "blocked=true to see which host; a host that is not allowed cannot be reached from the sandbox by "
            "any route, so ask a human to add it to the egress policy."
        )
    named = ", ".join(hosts[:_MAX_HOSTS_NAMED]) + (" and others" if len(hosts) > _MAX_HOSTS_NAMED else "")
    it = "it" if len(hosts) == 1 else "them"
    verb = "is" if len(hosts) == 1 else "are"
    return (
        f"{'Host' if len(hosts) == 1 else 'Hosts'} {named} {verb} not allowed by this sandbox's egress policy; "
        f"ask a human to add {it} to the egress policy (get_egress_policy shows the rules). The sandbox has no "
        "other way out, so do not look for one."
    )
