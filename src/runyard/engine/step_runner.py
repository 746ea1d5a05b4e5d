"""Starting one pipeline step as a process, and recording how it ended."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.compute.job_environment import ENVIRONMENT_PROBLEMS
from runyard.compute.process_job import ProcessJob
from runyard.core.workspace import Workspace
from runyard.engine.data_paths import (
    describe_output,
    manifest_location,
    output_location,
    path_on_datastore,
    publish,
    scratch_location,
)
from runyard.engine.dataset_inputs import (
    INPUT_DATASETS_ENV,
    ResolvedInput,
    describe_output_views,
    materialize_inputs,
    write_input_file,
)
from runyard.engine.step_data import register_output, upload_output
from runyard.engine.step_parallel import (
    DRIVER_MODULE,
    carry_output,
    checkpoint_key,
    describe_settings,
    failure_sentence,
    job_document,
    open_checkpoint,
    output_roots,
    remove_checkpoint,
    settings_for,
    write_job,
)
from runyard.errors import RunyardError
from runyard.parallel.job import ENV_JOB
from runyard.store.snapshots import SnapshotStore


class StepEnvironmentFailed(RunyardError):
    """The step's environment could not be prepared; `error` is the step run's error (no process started)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


@dataclass
class StartedStep:
    name: str
    run_id: str
    job: ProcessJob
    proc: subprocess.Popen[bytes]
    started: float
    # name → {"final": path, "write": path, "mode", "overwrite", "datastore", "pathOnDatastore"}
    outputs: dict[str, dict[str, Any]]
    execution_id: str = ""
    target: str = "local"  # the step's compute target: its slots are counted per target
    canceled: bool = False
    extra: list[str] = field(default_factory=list)
    #: A ParallelRunStep's checkpoint folder (engine/step_parallel.py): removed once the step completed.
    checkpoint: Path | None = None


def resolve_arguments(
    step: dict[str, Any], params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str]
) -> list[str]:
    resolved = []
    for token in step["arguments"]:
        if "literal" in token:
            resolved.append(token["literal"])
        elif "param" in token:
            resolved.append(str(params[token["param"]]))
        elif "input" in token:
            resolved.append(inputs[token["input"]])
        else:
            resolved.append(outputs[token["output"]])
    return resolved


def resolve_params(step: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    return {k: (str(params[v["param"]]) if "param" in v else v["literal"]) for k, v in step["params"].items()}


def prepare_step_environment(job: ProcessJob, step: dict[str, Any], plan: Any = None) -> None:
    """Build or reuse the step's environment (nothing to do without a definition: the scheduler's
    interpreter). Raises StepEnvironmentFailed when it cannot be prepared: that step fails, with the build
    log's tail in its error and all of it in 20_image_build_log.txt; nothing else of it was made."""
    definition = step["environment"].get("definition")
    if definition is None:
        return
    try:
        job.prepare_environment(definition, plan)
    except ENVIRONMENT_PROBLEMS as exc:
        error = job.environment_failure(exc, str(step["environment"].get("name") or ""))
        job.wrap_up(None, "not-started", time.time(), ["No process was started: see 65_job_prep.txt"])
        raise StepEnvironmentFailed(error) from None


def start_step(
    ws: Workspace,
    experiment_name: str,
    step: dict[str, Any],
    run_id: str,
    params: dict[str, Any],
    input_paths: dict[str, str],
    datasets: dict[str, ResolvedInput] | None = None,
    plan: Any = None,
    job: ProcessJob | None = None,
    material: dict[str, Any] | None = None,
    fresh: bool = False,
) -> StartedStep:
    """Prepare the step's environment unless `job` comes with it prepared (engine/step_prepare.py;
    `plan`: the scheduler's plan of it), materialise the snapshot, create every output folder, put the
    dataset inputs in front of the job (engine/dataset_inputs.py), then spawn the script with the
    environment's interpreter. Raises StepEnvironmentFailed as prepare_step_environment does.

    A ParallelRunStep (graph entry "parallel") runs its driver instead of the script: `material` (the
    step's reuse material) keys its checkpoint, `fresh` (regenerate_outputs) empties that first."""
    settings = settings_for(step, params)  # a bad value fails the step here, before anything is made
    work = ws.work_dir / run_id
    job = job if job is not None else ProcessJob(ws, run_id, experiment_name, work)
    if job.prepared is None:
        prepare_step_environment(job, step, plan)
    snap = SnapshotStore(ws.artifacts).materialize(step["source"]["snapshot"], job.cwd)
    job.prep(
        f"Step {step['name']!r}: snapshot {snap.id[:12]} ({len(snap.files)} files) of {step['source']['dir']}"
    )
    job.link_run_folders()
    outputs: dict[str, dict[str, Any]] = {}
    for out in step["outputs"]:
        final = output_location(ws, out, run_id)
        write = scratch_location(work, out["name"]) if out["mode"] == "upload" else final
        write.mkdir(parents=True, exist_ok=True)
        outputs[out["name"]] = {
            "final": final,
            "write": write,
            "mode": out["mode"],
            "overwrite": out["overwrite"],
            "datastore": out["datastore"],
            "pathOnDatastore": path_on_datastore(out, run_id),
            "register": out.get("registration"),
        }
        job.prep(
            f"Output {out['name']!r} ({out['mode']}): created {write}"
            + (f"; published to {final} when the step succeeds" if write != final else "")
        )
    input_paths = dict(input_paths)
    for binding in step["inputs"]:
        if binding["mode"] == "download":  # a private copy: the step may change it without touching upstream
            copy = work / "inputs" / binding["name"]
            # links stay links, as the output's manifest records them: their targets are not read
            shutil.copytree(input_paths[binding["name"]], copy, dirs_exist_ok=True, symlinks=True)
            input_paths[binding["name"]] = str(copy)
    described = describe_output_views(step, input_paths)
    for name in described:  # a tabular view of an upstream output: the job gets a dataset, not a folder
        input_paths[name] = name
    values, more = materialize_inputs(ws, work, datasets or {})
    described.update(more)
    input_paths.update(values)
    for name, path in input_paths.items():
        job.prep(f"Input {name!r}: {path}")
    write_paths = {n: str(o["write"]) for n, o in outputs.items()}
    arguments = resolve_arguments(step, params, input_paths, write_paths)
    argv = [sys.executable, "-u", step["script"], *arguments]
    env = {f"AZUREML_DATAREFERENCE_{n}": p for n, p in {**input_paths, **write_paths}.items()}
    if described:
        env[INPUT_DATASETS_ENV] = str(write_input_file(work, described))
    env.update({f"AML_PARAMETER_{k}": v for k, v in resolve_params(step, params).items()})
    checkpoint = None
    if settings is not None:
        if material is None:
            raise ValueError(f"ParallelRunStep {step['name']!r} started without its material")
        checkpoint = open_checkpoint(job.ws, checkpoint_key(material), fresh)
        document = job_document(step, settings, input_paths, write_paths, arguments, checkpoint)
        env[ENV_JOB] = str(write_job(work, document))
        job.prep(describe_settings(settings))
        job.prep(f"Checkpoint: {checkpoint}" + (" (emptied: regenerate_outputs=True)" if fresh else ""))
        if document["output"]:
            carried = carry_output(
                checkpoint, Path(document["output"]), settings.append_row_file_name, output_roots(job.ws)
            )
            if carried:
                job.prep(f"Output: {carried} files the entry script wrote in an earlier run of this work")
        argv = [job.python, "-u", "-m", DRIVER_MODULE]
    proc = job.spawn(argv, env)
    return StartedStep(step["name"], run_id, job, proc, time.time(), outputs, checkpoint=checkpoint)


def finish_step(
    started: StartedStep, code: int | None, ended: str
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Publish upload outputs of a successful step; returns (error or None, recorded outputs)."""
    recorded: dict[str, Any] = {}
    error = None
    if ended == "exited" and code == 0:
        try:
            for name, out in started.outputs.items():
                if out["mode"] == "upload":
                    publish(Path(out["write"]), Path(out["final"]), out["overwrite"])
                    started.extra.append(f"Published output {name!r} to {out['final']}")
                manifest = manifest_location(started.job.ws, started.run_id, name)
                recorded[name] = {
                    **describe_output(Path(out["final"]), manifest),
                    "mode": out["mode"],
                    "output": name,
                    "datastore": out["datastore"],
                    "pathOnDatastore": out["pathOnDatastore"],
                    "run_id": started.run_id,  # kept when the output is reused: the run that made it
                }
                note = upload_output(started.job.ws, out)  # a remote datastore gets the files too
                if note:
                    started.extra.append(note)
            for name, out in started.outputs.items():  # registered only once every output is in place
                if out.get("register"):
                    recorded[name]["dataset"] = register_output(started.job.ws, started.run_id, out)
                    started.extra.append(
                        f"Registered output {name!r} as dataset {recorded[name]['dataset']['name']!r} "
                        f"version {recorded[name]['dataset']['version']}"
                    )
        except (RunyardError, OSError) as exc:  # a publish that fails fails the step, not the scheduler
            error = {"code": "OutputError", "message": str(exc)}
    else:
        for name, out in started.outputs.items():
            if out["mode"] == "upload":
                started.extra.append(
                    f"Output {name!r} not published (step did not succeed); partial files kept in "
                    f"{out['write']}"
                )
    keep = error is not None or (
        any(o["mode"] == "upload" for o in started.outputs.values()) and not (ended == "exited" and code == 0)
    )
    job_error = started.job.wrap_up(code, ended, started.started, started.extra, keep_work=keep)
    if started.checkpoint is not None:
        if error is None and job_error is None and ended == "exited" and code == 0:
            remove_checkpoint(started.checkpoint)  # its outputs are published: nothing left to resume
        elif job_error is not None:
            sentence = failure_sentence(job_error.get("logTail") or [])
            if sentence:  # the driver's outcome first: "ParallelRunStep failed: 12 of 200 files failed..."
                job_error["message"] = f"{sentence}\n{job_error['message']}"
    return error or job_error, recorded
