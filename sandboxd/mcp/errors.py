"""Domain errors as tool-error text a model can act on.

A model cannot read a status code, and "404" tells it nothing about what to try
next; so each error class gets a sentence that names the next step (which tool to
call, or that a human must act). The lookup walks the class's MRO, so a subclass
added to ``sandboxd.errors`` later gets its parent's advice until it is given its
own: supporting a new error is one more entry in ``_NEXT_STEP``.
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

_MAX_VALIDATION_ITEMS: Final = 5
_MISSING_SANDBOX: Final = re.compile(r"\bno sandbox\b|\bsandbox sbx_")
_MISSING_PROCESS: Final = re.compile(r"\bno process\b")


def next_step(exc: errors.SandboxdError) -> str:
    """The advice for ``exc``: that of its own class, else of its nearest ancestor that has one."""
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
    # The services say "no sandbox sbx_..." / "sandbox sbx_... does not exist" and "no process ...";
    # anything else not found is a path or a program.
    if _MISSING_SANDBOX.search(message):
        return _NOT_FOUND_SANDBOX
    if _MISSING_PROCESS.search(message):
        return _NOT_FOUND_PROCESS
    return _NOT_FOUND_PATH


def _sentence(message: str) -> str:
    text = message.strip() or "the request failed"
    return text if text.endswith((".", "!", "?")) else text + "."
