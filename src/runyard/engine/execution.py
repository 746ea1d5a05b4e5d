"""One pipeline run's progress: which steps may start, which are reused, which are canceled.

The state lives in the store (each step is a child run); this object is a cache of it that the
scheduler rebuilds after a restart, so it must never hold a fact the store does not.

Trust (issue 10): the record is input, not truth. The steps are the children pinned at submit
(`data["stepRuns"]`), not whatever child carries a step's name; inputs must lie in this workspace's
datastores; a reuse candidate must be a pinned step of a pipeline placed here, by a submitter allowed to
run here, whose outputs and manifests lie where a scheduler writes them.

The record is input, not truth: constructing a PipelineExecution parses the graph
(engine/graph_spec.py), checks its parameters, its step runs and that each script is a file of its
snapshot, and raises InvalidPipeline with the reason. The scheduler then fails that one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runyard.compute.job_environment import plan_for
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.core.workspace import Workspace
from runyard.engine.data_paths import MANIFEST_DIR, verify_output
from runyard.engine.dataset_inputs import ResolvedInput, input_details, resolve_step_datasets, view_hash
from runyard.engine.graph_order import dependencies, topological_order
from runyard.engine.graph_spec import GraphSpec, parse_graph
from runyard.engine.placement import Placement, Submitters
from runyard.engine.reuse import OUTPUTS_GONE, ReuseDecision, environment_material, explain, step_material
from runyard.engine.step_data import register_reused
from runyard.engine.step_parallel import parallel_material
from runyard.engine.step_runner import resolve_arguments, resolve_params
from runyard.errors import InvalidInputError, NotFoundError, RunyardError
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord
from runyard.store.snapshots import SnapshotStore

#: The error code of a pipeline failed because a step's record was ended by someone else.
STEP_TAMPERED = "StepTampered"


class InvalidPipeline(InvalidInputError):
    """A pipeline run record the scheduler cannot run (bad graph, parameters, step runs or snapshot)."""


@dataclass
class StepState:
    name: str
    run_id: str
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)


class StepTampered(RunyardError):
    """A step run's record was ended (Completed) by someone other than the scheduler that runs it."""

    def __init__(self, name: str, run_id: str, how: str) -> None:
        super().__init__(
            f"Step {name!r} (run {run_id}) {how}, but its scheduler did not record that: its record was "
            "changed by someone else, so nothing it claims is used. Check who holds write tokens for this "
            "workspace (`runyard token list`), then resubmit the pipeline."
        )


class UntrustedInput(InvalidInputError):
    """A step's input or a reuse candidate points where no scheduler of this workspace writes."""


def pinned_steps(data: Any) -> dict[str, str] | None:
    """The step name -> step run id map recorded at submit, or None for a record written before it."""
    pins = data.get("stepRuns") if isinstance(data, dict) else None
    if pins is None:
        return None
    if not isinstance(pins, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in pins.items()
    ):
        raise InvalidPipeline("its stepRuns is not an object of step names to step run ids")
    return dict(pins)


class PipelineExecution:
    def __init__(self, ws: Workspace, record: RunRecord, submitters: Submitters | None = None) -> None:
        self.ws = ws
        self.store = ws.store
        self.run_id = record.run_id
        self.experiment_name = record.experiment_name
        self.experiment_id = record.experiment_id
        self._snapshots = SnapshotStore(ws.artifacts)
        data = record.data if isinstance(record.data, dict) else {}
        try:
            self.spec: GraphSpec = parse_graph(data.get("graph"))
        except InvalidInputError as exc:
            raise InvalidPipeline(f"its graph is invalid: {exc}") from None
        # Plain JSON of the validated graph: the step runner and reuse read steps as dicts.
        self.graph: dict[str, Any] = self.spec.to_json()
        self.params: dict[str, Any] = self._parameters(data.get("parameters", {}))
        self.continue_on_failure = data.get("continueOnStepFailure", False) is True
        self.regenerate = data.get("regenerateOutputs", False) is True
        self.steps_by_name = {s["name"]: s for s in self.graph["steps"]}
        self.deps = dependencies(self.graph)
        self.order = topological_order(self.graph)
        self.canceling = False
        # Steps whose reuse was decided against; the decision is recorded when the step starts.
        self.pending: dict[str, tuple[dict[str, Any], str]] = {}
        self.states: dict[str, StepState] = {}
        self.placement = Placement(ws)
        self.submitters = submitters or Submitters(ws)
        self.datastores = Path(os.path.realpath(ws.artifacts.local_path("datastores")))
        self._reusable: dict[str, dict[str, Any]] = {}  # verified outputs of accepted reuse candidates
        #: dataset inputs resolved for the material; the step starts with exactly these bytes' payloads
        self.datasets: dict[str, dict[str, ResolvedInput]] = {}
        #: each step's environment plan, made once (environments/plan.py); the step is built with it
        self.plans: dict[str, Any] = {}
        pins = pinned_steps(data)
        children = self.store.list_descendants(self.run_id, recursive=False)
        if pins is not None:  # exactly the children created with the run; forged extra ones are ignored
            by_id = {c.run_id: c for c in children if c.run_type == STEP_RUN_TYPE}
            for name in self.order:
                child = by_id.get(pins.get(name, ""))
                if child is None:
                    raise InvalidPipeline(f"step {name!r}: its pinned step run {pins.get(name)!r} is missing")
                self.states[name] = StepState(name, child.run_id, child.status, child.data.get("outputs", {}))
        else:  # written before runyard pinned step runs: first child by name (docs/security.md, Known limits)
            for child in children:
                name = child.display_name or ""
                if name in self.steps_by_name and name not in self.states:
                    self.states[name] = StepState(
                        name, child.run_id, child.status, child.data.get("outputs", {})
                    )
        missing = [n for n in self.order if n not in self.states]
        if missing:
            raise InvalidPipeline(f"step {missing[0]!r} of its graph has no step run")
        self._check_scripts()

    def _parameters(self, values: Any) -> dict[str, Any]:
        if not isinstance(values, dict):
            raise InvalidPipeline(f"its parameter values are {type(values).__name__}, not an object")
        for name, spec in self.spec.parameters.items():
            value = values.get(name)
            if spec.is_dataset:  # {"dataset": payload} / {"datapath": ...}, checked as the graph's own are
                try:
                    if not isinstance(value, dict) or not isinstance(spec.default, BaseModel):
                        raise ValueError(f"it is {type(value).__name__}")
                    type(spec.default).model_validate(value)
                except (ValueError, ValidationError) as exc:
                    raise InvalidPipeline(
                        f"parameter {name!r} must hold a dataset or DataPath: {exc}"
                    ) from None
            elif value is None or not isinstance(value, (str, int, float, bool)):
                raise InvalidPipeline(f"parameter {name!r} has no usable value ({value!r})")
        return dict(values)

    def _check_scripts(self) -> None:
        """Every script must be a file of its own snapshot, whose manifest matches its id."""
        manifests: dict[str, dict[str, str]] = {}
        try:
            for step in self.spec.steps:
                snap = step.source.snapshot
                if snap is not None and snap not in manifests:
                    manifests[snap] = self._snapshots.load(snap).files
            self.spec.check_scripts(manifests)
        except (InvalidInputError, NotFoundError) as exc:
            raise InvalidPipeline(str(exc)) from None

    # -- queries ---------------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return any(s.status == RunStatus.FAILED for s in self.states.values())

    def finished(self) -> bool:
        return all(s.status in TERMINAL_STATUSES for s in self.states.values())

    def final_status(self) -> str:
        statuses = {s.status for s in self.states.values()}
        if RunStatus.FAILED in statuses:
            return RunStatus.FAILED
        if self.canceling or RunStatus.CANCELED in statuses:
            return RunStatus.CANCELED
        return RunStatus.COMPLETED

    def ready(self) -> list[str]:
        """Steps not started whose every dependency completed, in topological order."""
        return [
            n
            for n in self.order
            if self.states[n].status == RunStatus.NOT_STARTED
            and all(self.states[d].status == RunStatus.COMPLETED for d in self.deps[n])
        ]

    def blocked(self) -> list[tuple[str, str]]:
        """Steps that can never run: a dependency failed or was canceled. Returns (name, reason)."""
        out = []
        for name in self.order:
            if self.states[name].status not in (RunStatus.NOT_STARTED, RunStatus.QUEUED):
                continue  # a Queued step waits for a slot: it must not take one after a failure either
            bad = [
                d for d in self.deps[name] if self.states[d].status in (RunStatus.FAILED, RunStatus.CANCELED)
            ]
            if bad:
                out.append((name, f"Not run: upstream step {bad[0]!r} ended {self.states[bad[0]].status}."))
            elif self.failed and not self.continue_on_failure:
                out.append((name, "Not run: another step failed and continue_on_step_failure is False."))
        return out

    # -- inputs and reuse --------------------------------------------------------------------------
    def in_datastores(self, path: object) -> bool:
        """Does `path` resolve (links followed) to a folder strictly inside this workspace's datastores?"""
        if not isinstance(path, str) or not path or "\0" in path:
            return False
        real = Path(os.path.realpath(path))
        return real != self.datastores and real.is_relative_to(self.datastores)

    def input_paths(self, name: str) -> dict[str, str]:
        """Raises UntrustedInput when an upstream output is not in this workspace's datastores."""
        step = self.steps_by_name[name]
        paths: dict[str, str] = {}
        for i in step["inputs"]:
            recorded = self.states[i["step"]].outputs.get(i["output"])
            path = recorded.get("path") if isinstance(recorded, dict) else None
            if not self.in_datastores(path):
                raise UntrustedInput(
                    f"Input {i['name']!r} of step {name!r} (output {i['output']!r} of step {i['step']!r}) is "
                    f"{path!r}, which is not inside this workspace's datastores ({self.datastores}); a step "
                    "only reads outputs a scheduler of this workspace wrote. Resubmit the pipeline."
                )
            paths[i["name"]] = str(path)
        return paths

    def plan(self, name: str) -> Any:
        """The step's environment BuildPlan (EnvironmentDefinitionError when it cannot be built as written)."""
        if name not in self.plans:
            self.plans[name] = plan_for(self.steps_by_name[name]["environment"].get("definition"))
        return self.plans[name]

    def material(self, name: str) -> dict[str, Any]:
        """Raises InvalidParallelSetting (a ParallelRunStep setting v1 refuses), InputUnavailable,
        UntrustedInput or EnvironmentDefinitionError: the step then fails without a process."""
        step = self.steps_by_name[name]
        parallel = parallel_material(step, self.params)
        environment = environment_material(self.plan(name), step["environment"].get("definition"))
        paths = self.input_paths(name)
        placeholder_outputs = {o["name"]: f"<output:{o['name']}>" for o in step["outputs"]}
        placeholder_inputs = {n: f"<input:{n}>" for n in [*paths, *(d["name"] for d in step["datasets"])]}
        args = resolve_arguments(step, self.params, placeholder_inputs, placeholder_outputs)
        hashes = {i["name"]: self.states[i["step"]].outputs[i["output"]]["hash"] for i in step["inputs"]}
        for i in step["inputs"]:  # a tabular view: how the folder is parsed is part of what is read
            if i.get("read") is not None:
                hashes[i["name"]] = view_hash(hashes[i["name"]], i["read"])
        # Dataset inputs: their bytes now (InputUnavailable when a registered version changed or is gone).
        resolved = resolve_step_datasets(self.ws, step, self.params)
        self.datasets[name] = resolved
        hashes.update({n: r.content_hash for n, r in resolved.items()})
        details = input_details(self.ws, self.states[name].run_id, resolved)
        files = self._snapshots.load(step["source"]["snapshot"]).files
        return step_material(
            step, args, resolve_params(step, self.params), files, hashes, details, environment, parallel
        )

    def decide_reuse(self, name: str, material: dict[str, Any], fp: str) -> ReuseDecision:
        step = self.steps_by_name[name]
        if self.regenerate:
            return ReuseDecision(False, "regenerate_outputs=True was passed at submit", ("regenerate",))
        if not step["allow_reuse"]:
            return ReuseDecision(False, "allow_reuse=False on this step", ("allow_reuse",))
        candidates = self.store.list_runs(
            run_type=STEP_RUN_TYPE, fingerprint=fp, status=[RunStatus.COMPLETED], limit=20
        )
        problem: str | None = None  # why the newest matching run's outputs cannot be reused
        for candidate in candidates:
            if candidate.data.get("reusedFrom") is not None or self.untrusted(candidate) is not None:
                continue
            outputs = candidate.data.get("outputs", {})
            found = next((p for p in map(verify_output, outputs.values()) if p is not None), None)
            problem = problem or found
            if found is None:
                reused = dict(outputs)
                try:  # register_on_complete added since: the reused files are registered now
                    notes = register_reused(self.ws, step, reused, candidate.run_id)
                except (RunyardError, OSError) as exc:
                    problem = problem or f"its outputs cannot be registered on complete: {exc}"
                    continue
                self._reusable[candidate.run_id] = reused
                return ReuseDecision(
                    True,
                    f"reused run {candidate.run_id}: nothing it depends on changed"
                    + "".join(f"; {note}" for note in notes),
                    (),
                    candidate.run_id,
                )
        previous = self.store.list_runs(
            experiment_name=self.experiment_name,
            run_type=STEP_RUN_TYPE,
            display_name=name,
            status=[RunStatus.COMPLETED],
            limit=1,
            exclude_parent=self.run_id,
        )
        if not previous or "material" not in previous[0].data:
            if candidates:
                return ReuseDecision(False, problem or OUTPUTS_GONE, ("outputs-missing",))
            return ReuseDecision(False, f"no earlier run of step {name!r}", ("new",))
        sources = {i["name"]: i["step"] for i in step["inputs"]}
        return explain(previous[0].data["material"], material, sources, outputs_problem=problem)

    def untrusted(self, candidate: RunRecord) -> str | None:
        """Why a Completed step run with a matching fingerprint may not be reused, or None.

        Anyone who may write runs can copy a fingerprint (issue 10, High 2), so a candidate counts only
        as a step run pinned by a pipeline placed on this workspace, whose submitter may run code on
        its target, with outputs in this workspace's datastores and manifests in its own run folder."""
        parent = self.store.get_run(candidate.parent_id) if candidate.parent_id else None
        if parent is None or parent.run_type != PIPELINE_RUN_TYPE or not self.placement.is_ours(parent):
            return "its pipeline is not placed on this workspace"
        if (parent.data.get("error") or {}).get("code") == STEP_TAMPERED:
            return "its pipeline failed because a step record was changed by someone else"
        try:
            pins = pinned_steps(parent.data) or {}
        except InvalidPipeline:
            pins = {}
        if candidate.run_id not in pins.values():
            return "it is not a step run its pipeline was submitted with"
        if self.submitters.pipeline_refusal(parent, self.placement.target_of(parent)) is not None:
            return "its submitter may not run code here (on its placement or a step's named target)"
        outputs = candidate.data.get("outputs", {})
        if not isinstance(outputs, dict):
            return "its outputs are not an object"
        manifests = Path(
            os.path.realpath(self.ws.artifacts.local_path(f"runs/{candidate.run_id}/{MANIFEST_DIR}"))
        )
        for recorded in outputs.values():
            if not isinstance(recorded, dict) or not self.in_datastores(recorded.get("path")):
                return "an output lies outside this workspace's datastores"
            manifest = recorded.get("manifest")
            if not isinstance(manifest, str) or not Path(os.path.realpath(manifest)).is_relative_to(
                manifests
            ):
                return "an output's manifest lies outside the run's own folder"
        return None

    def reuse_outputs(self, reused_run_id: str) -> dict[str, Any]:
        """The outputs decide_reuse verified (not what the record holds now: it may have been edited since)."""
        return dict(self._reusable[reused_run_id])
