"""Which pipeline runs a scheduler may touch, and whose code it may run (docs/security.md).

Two questions, asked of every active pipeline run a scheduler sees in its store:

1. Is it placed here? `Pipeline.submit` records `data["placement"] = {"workspace": <id>, "target": …}`.
   A scheduler starts, recovers and stops only runs placed on its own workspace identity and on a
   target it serves. Several folders may share one database or one server; each one's scheduler
   leaves the others' runs alone. A run without placement (written by an older runyard) counts as
   placed here only when this folder holds the database itself (its own SQLite file).
2. May its submitter run code on that target? See `Submitters.refusal`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from runyard.core.workspace import Workspace
from runyard.store import RunRecord, SqlStore

#: Compute targets a scheduler runs steps on. Only the scheduler's own machine exists today.
SERVED_TARGETS = ("local",)
#: Scopes whose tokens may be granted compute targets (run tokens never submit pipelines).
SUBMIT_SCOPES = ("write", "admin")
_TOKEN_RE = re.compile(r"^ry_([0-9a-f]{12})_")


def placement_for(ws: Workspace, target: str = "local") -> dict[str, str]:
    """What `Pipeline.submit` records: this folder's identity and the target the steps run on."""
    return {"workspace": ws.identity, "target": target}


def owns_database(ws: Workspace) -> bool:
    """True when the store is a SQLite file inside the workspace folder (nobody else's folder uses it)."""
    uri = ws.tracking_uri
    if not uri.startswith("sqlite:///"):
        return False
    return Path(uri[len("sqlite:///") :]).resolve().is_relative_to(ws.path)


def token_id_of(token: str | None) -> str | None:
    match = _TOKEN_RE.match(token or "")
    return match.group(1) if match else None


class Placement:
    def __init__(self, ws: Workspace, targets: tuple[str, ...] = SERVED_TARGETS) -> None:
        self.identity = ws.identity
        self.targets = targets
        self.legacy_is_ours = owns_database(ws)

    def target_of(self, record: RunRecord) -> str:
        placement = record.data.get("placement")
        if isinstance(placement, dict) and isinstance(placement.get("target"), str):
            return str(placement["target"])
        return record.target or "local"

    def is_ours(self, record: RunRecord) -> bool:
        """Placed on this workspace identity and on a target this scheduler serves."""
        placement = record.data.get("placement")
        if placement is None:
            return self.legacy_is_ours and self.target_of(record) in self.targets
        return (
            isinstance(placement, dict)
            and placement.get("workspace") == self.identity
            and placement.get("target") in self.targets
        )


class Submitters:
    """Who may cause code to run on this scheduler's targets.

    - No `submittedBy`: the run was written with direct access to the database, i.e. by someone who
      could run code here anyway (the workspace's owner). Servers stamp every run they create.
    - `{"token": id}`: the scheduler's own token (a client scheduler of a server workspace runs what
      it submitted with that token), or, where the scheduler holds the database, a live write/admin
      token whose compute targets include the target (or "*").
    - `{"auth": "off"}`: only when `accept_unauthenticated` (`runyard up`, whose own studio runs
      without auth on 127.0.0.1 only), or in a client scheduler without a token of its own, which
      works for such a server (loopback-only, so on this machine) and runs only runs placed on its
      own folder. Both accept the same risk: any local process can write such a record.
    """

    def __init__(self, ws: Workspace, *, accept_unauthenticated: bool = False) -> None:
        self.own_token = token_id_of(ws.token)
        self.tokens = ws.store if isinstance(ws.store, SqlStore) else None
        self.accept_unauthenticated = accept_unauthenticated

    def refusal(self, record: RunRecord, target: str) -> str | None:
        """None when the run may execute; otherwise the reason, written for its submitter."""
        data = record.data
        if "submittedBy" not in data:
            return None
        who: Any = data["submittedBy"]
        grant = f"An admin can grant that with `runyard token create --scope write --compute {target}`."
        if isinstance(who, dict) and who.get("auth") == "off" and "token" not in who:
            if self.accept_unauthenticated or (self.tokens is None and self.own_token is None):
                return None  # runyard up, or a tokenless client of that (loopback-only) server
            return (
                f"It was submitted through a server running without --auth, and this scheduler only runs "
                f"such pipelines when it is `runyard up` serving that workspace. Run `runyard up`, or "
                f"start the server with --auth and submit with a token allowed to use {target!r}. {grant}"
            )
        token = who.get("token") if isinstance(who, dict) else None
        if not isinstance(token, str):
            return f"It was submitted by {who!r}, which is not a principal this scheduler knows."
        if token == self.own_token:
            return None
        if self.tokens is None:
            return (
                f"It was submitted with token {token}, and this scheduler (working with token "
                f"{self.own_token or 'none'}) only runs pipelines submitted with its own token."
            )
        problem = self._token_problem(token, target)
        if problem is None:
            return None
        return f"It was submitted with token {token}, which {problem} {grant}"

    def pipeline_refusal(self, record: RunRecord, target: str) -> tuple[str, str] | None:
        """`refusal` for the pipeline's placement `target` and for every step's own compute target (a
        step runs on its named target's slots on this machine), so a grant of "local" alone does not
        run steps placed on a named target. None when it may run; else (where, reason), where names
        the target and, for a step's, the step. A graph that is not a list of steps is left to the
        pipeline's parser (InvalidPipeline), which refuses it with its own reason."""
        refusal = self.refusal(record, target)
        if refusal is not None:
            return f"compute target {target!r}", refusal
        if "submittedBy" not in record.data:
            return None
        graph = record.data.get("graph")
        steps = graph.get("steps") if isinstance(graph, dict) else None
        for step in steps if isinstance(steps, list) else []:
            named = step.get("compute_target") if isinstance(step, dict) else None
            if not isinstance(named, str) or named == target:
                continue
            refusal = self.refusal(record, named)
            if refusal is not None:
                return f"compute target {named!r} (step {str(step.get('name'))!r})", refusal
        return None

    def _token_problem(self, token_id: str, target: str) -> str | None:
        assert self.tokens is not None
        record = self.tokens.get_token(token_id)
        if record is None:
            return "does not exist (any more)."
        if record.revoked_time is not None:
            return "was revoked."
        if record.expires_time is not None and record.expires_time < time.time():
            return "has expired."
        if record.scope not in SUBMIT_SCOPES:
            return f"has scope {record.scope!r}; only write or admin tokens may submit pipelines."
        if target not in record.compute and "*" not in record.compute:
            allowed = ", ".join(record.compute) or "none"
            return f"may not run code on compute target {target!r} (its compute targets: {allowed})."
        return None
