"""Who may write what on a run over REST: the server's side of the pipeline trust rules (docs/security.md).

A scheduler trusts the records it reads: a step's status and outputs decide what the next step reads, a
fingerprint offers a step's outputs for reuse, and `process`/`supervisor` name processes that a
scheduler or a waiting client may stop. So, over REST:

- pipeline and step runs belong to their submitter: a step run is created only together with its
  pipeline run, both NotStarted and blank; afterwards only the submitter's token (the client scheduler
  uses it) changes their status or data. Anyone who may write may still *ask* to stop them;
- the keys that steer processes or reuse (STEERING_KEYS) and the fingerprint are written only by the
  token that created the run (a script run's own run token may record its process and supervisor);
- the keys that name what a run's own process hands back to its user (CREATOR_KEYS: the snapshot
  `restore_snapshot()` returns, the local folder uploaded as outputs/) are written only by the token
  that created the run or the run's own run token (a job may `take_snapshot()`). They are not steering
  keys: they steer no process and no reuse, so a pipeline may carry them, and the job itself may
  write them;
- a pipeline placed on the server's own folder is accepted only from a server started with --compute;
- ACTION_KEYS are not data: the MLflow door (mlflow_api, server/routes_mlflow_artifacts.py) passes one as
  a data key to ask about an action on a run, never stored: hiding or restoring it (runs/delete|restore),
  deleting its files through the artifact proxy, nesting a new run under it. On a pipeline or step run
  they follow the owner rule above (only the submitter's token; they are never a plain cancel), so
  another write token cannot hide a pipeline's steps or delete their files; on any other run the scope
  and family checks decide, as for every MLflow write.
"""

from __future__ import annotations

from typing import Any

from runyard.core.run_snapshots import OUTPUTS_KEY, SNAPSHOT_KEY
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.errors import InvalidInputError, RunNotFound
from runyard.server.auth import Principal
from runyard.server.errors import forbidden
from runyard.status import RunStatus
from runyard.store import RunRecord, SqlStore

#: RunRecord.data keys that steer which processes are stopped and which files later steps read.
STEERING_KEYS = ("outputs", "material", "reuse", "reusedFrom", "process", "supervisor", "owner")
#: The steering keys a script run's own run token may write (its supervisor records itself and its job).
RUN_TOKEN_KEYS = frozenset({"process", "supervisor"})
#: RunRecord.data keys only the run's creator or its own run token may write (core/run_snapshots.py).
CREATOR_KEYS = frozenset({SNAPSHOT_KEY, OUTPUTS_KEY})
PIPELINE_TYPES = (PIPELINE_RUN_TYPE, STEP_RUN_TYPE)
#: Pseudo data keys naming actions on a run (see the module docstring): owner-only on pipeline/step runs.
ACTION_KEYS = frozenset({"lifecycle_stage", "deleteArtifacts", "nestRun"})


_ACTION_WORDS = {
    "lifecycle_stage": "delete or restore it",
    "deleteArtifacts": "delete its files",
    "nestRun": "add runs under it",
}


def submitter_token(record: RunRecord) -> str | None:
    """The token id the server stamped on `record` when it was created (None: no token did)."""
    stamp = record.data.get("submittedBy")
    token = stamp.get("token") if isinstance(stamp, dict) else None
    return token if isinstance(token, str) else None


def check_new_runs(
    store: SqlStore, runs: list[RunRecord], who: Principal, *, server_identity: str, host_is_compute: bool
) -> None:
    """Refuse runs that would let someone else's scheduler start, skip or reuse something."""
    pipelines = {r.run_id for r in runs if r.run_type == PIPELINE_RUN_TYPE}
    step_runs = {r.run_id: r.data.get("stepRuns") for r in runs if r.run_type == PIPELINE_RUN_TYPE}
    for run in runs:
        named = sorted(set(run.data) & RUN_TOKEN_KEYS)
        if named:  # atk_reap.py: a made-up process on a teammate's machine for their `logs -f` to stop
            raise forbidden(
                f"Run {run.run_id} was sent with data keys {', '.join(named)}: they name the processes of a "
                "run that has started, and only its supervisor records them, after the run is created."
            )
        if run.run_type in PIPELINE_TYPES:
            _check_blank(run)
        if run.run_type == PIPELINE_RUN_TYPE:
            _check_placement(run, server_identity, host_is_compute)
        if run.run_type == STEP_RUN_TYPE:
            listed = step_runs.get(run.parent_id or "")
            if run.parent_id not in pipelines or (
                isinstance(listed, dict) and run.run_id not in listed.values()
            ):
                raise forbidden(
                    f"Step run {run.run_id}: a step run can only be created in the same request as its "
                    "pipeline run (and be one of its data.stepRuns), so nobody can add steps to a pipeline "
                    "someone else submitted. Submit a new pipeline instead."
                )
        elif run.parent_id is not None and run.parent_id not in pipelines:
            try:
                parent = store.get_run(run.parent_id)
            except (RunNotFound, InvalidInputError):
                continue  # the store refuses it below, saying what is wrong with the parent
            if parent.run_type == PIPELINE_RUN_TYPE and not _owns(store, parent, who):
                raise forbidden(
                    f"Run {run.run_id}: only the submitter of pipeline {parent.run_id} may add runs under it."
                )


def _check_blank(run: RunRecord) -> None:
    problems = []
    if run.status != RunStatus.NOT_STARTED:
        problems.append(f"status {run.status!r} (must be NotStarted)")
    if run.fingerprint is not None:
        problems.append("a fingerprint")
    if run.start_time is not None or run.end_time is not None:
        problems.append("a start or end time")
    steering = sorted(set(run.data) & set(STEERING_KEYS))
    if steering:
        problems.append(f"data keys {', '.join(steering)}")
    if problems:
        raise forbidden(
            f"{run.run_type} {run.run_id} was sent with {'; '.join(problems)}: pipeline and step runs are "
            "created NotStarted and blank, and only their scheduler records what happened to them."
        )


def _check_placement(run: RunRecord, server_identity: str, host_is_compute: bool) -> None:
    placement = run.data.get("placement")
    workspace = placement.get("workspace") if isinstance(placement, dict) else None
    if not isinstance(workspace, str):
        raise forbidden(
            f"Pipeline run {run.run_id} has no data.placement.workspace: a pipeline sent to a server must "
            "say which folder's scheduler runs it (Pipeline.submit records it; upgrade the client)."
        )
    if workspace == server_identity and not host_is_compute:
        raise forbidden(
            f"Pipeline run {run.run_id} is placed on the server's own workspace folder, but this server was "
            "not started with --compute: nobody may run code on the server's machine over HTTP. Submit "
            "from your own workspace folder, or restart the server with --compute."
        )


def _pipeline_of(store: SqlStore, record: RunRecord) -> RunRecord:
    if record.run_type == STEP_RUN_TYPE and record.parent_id is not None:
        return store.get_run(record.parent_id)
    return record


def _owns(store: SqlStore, pipeline: RunRecord, who: Principal) -> bool:
    return who.auth_off or (who.token_id is not None and submitter_token(pipeline) == who.token_id)


def is_cancel(record: RunRecord, status: str | None, data: Any, fingerprint: Any, force: bool) -> bool:
    """A plain request to stop: CancelRequested on a pipeline, or Canceled, with nothing else recorded."""
    if status is None or data or fingerprint is not None or force:
        return False
    return status == RunStatus.CANCELED or (
        status == RunStatus.CANCEL_REQUESTED and record.run_type == PIPELINE_RUN_TYPE
    )


def check_run_write(
    store: SqlStore,
    who: Principal,
    run_id: str,
    *,
    status: str | None = None,
    data: dict[str, Any] | None = None,
    fingerprint: str | None = None,
    force: bool = False,
) -> None:
    """Raise 403 unless `who` may make this status change or data patch on run `run_id`.

    Call after the scope/family check: this adds the owner rules on top of it."""
    if who.auth_off:
        return  # a server without --auth trusts every caller alike, as before
    record = store.get_run(run_id)
    if record.run_type in PIPELINE_TYPES:
        pipeline = _pipeline_of(store, record)
        if _owns(store, pipeline, who) or is_cancel(record, status, data, fingerprint, force):
            return
        actions = sorted(set(data or {}) & ACTION_KEYS)
        if actions:
            raise forbidden(
                f"{record.run_type} {run_id} belongs to the token that submitted pipeline {pipeline.run_id}: only "
                f"that token may {_ACTION_WORDS[actions[0]]}. Others may only cancel it (status CancelRequested "
                "on the pipeline, or Canceled)."
            )
        raise forbidden(
            f"{record.run_type} {run_id} belongs to the scheduler of pipeline {pipeline.run_id}: only the token "
            "that submitted it changes its steps' status, outputs or data. Others may only cancel it "
            "(status CancelRequested on the pipeline, or Canceled, with no data)."
        )
    created_by_who = who.token_id is not None and submitter_token(record) == who.token_id
    if fingerprint is not None and (who.scope == "run" or not created_by_who):
        raise forbidden(
            f"Run {run_id}: only the token that created a run may set its fingerprint (it offers the run's "
            "outputs for reuse), and never a run token."
        )
    own_run_token = who.scope == "run" and who.run_id == run_id
    personal = set(data or {}) & CREATOR_KEYS
    if personal and not (created_by_who or own_run_token):
        raise forbidden(
            f"Run {run_id}: {', '.join(sorted(personal))} may be written only by the token that created the "
            "run or by the run itself (they name the code restore_snapshot() hands back and the local folder "
            "the run's own process uploads). Ask the run's owner, or start a run of your own."
        )
    steering = set(data or {}) & set(STEERING_KEYS)
    if not steering or created_by_who:
        return
    if own_run_token and steering <= RUN_TOKEN_KEYS:
        return  # a job's supervisor records itself and the process it started
    raise forbidden(
        f"Run {run_id}: {', '.join(sorted(steering))} may be written only by the token that created the run "
        "(they decide which processes are stopped and which files later steps read)."
    )
