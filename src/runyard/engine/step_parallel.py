"""A ParallelRunStep as the scheduler runs it: its settings in the reuse material, its checkpoint folder,
and the driver's job file (contract of issue 14: runyard/parallel/job.py reads it).

Three sets of settings, three different questions:
- the fingerprint (reuse) holds every resolved setting except the ones that only say how the work is
  scheduled (`SCHEDULING_ONLY`): more workers, another logging level or a node count give the same
  output, so changing them does not rerun a completed step;
- the checkpoint key leaves out also the thresholds and the timeouts (`RESUME_SAFE`): a user whose job
  failed on its error budget or on a timeout raises it and reruns, and the rerun continues with the
  remaining mini-batches instead of starting over;
- the driver gets all of them, resolved with the run's parameter values.

The checkpoint (`<workspace>/parallel/<key>`, 0700) outlives a failed, canceled or killed step run, so the
next run of the same work resumes there; it is removed once the step completed and its outputs are
published. regenerate_outputs=True starts from an empty one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from runyard.core.workspace import Workspace
from runyard.engine.graph_parallel import ParallelSettings, ParallelSpec, resolve_settings
from runyard.errors import InvalidInputError
from runyard.parallel.job import JOB_VERSION, ParallelJob

#: Settings that decide how the work is spread, not what it produces: not part of the fingerprint.
SCHEDULING_ONLY = ("process_count_per_node", "node_count", "logging_level")
#: Settings a rerun may change and still continue the same checkpoint (thresholds and timeouts).
RESUME_SAFE = (
    "error_threshold",
    "allowed_failed_count",
    "allowed_failed_percent",
    "run_invocation_timeout",
    "run_max_try",
)
JOB_FILE = "parallel_job.json"  # in the step's work folder
DRIVER_MODULE = "runyard.parallel.driver"
CHECKPOINT_ROOT = "parallel"  # inside the workspace folder
OUTPUT_NOTE = "engine-output.json"  # in a checkpoint: the output folder of the last run of its work


class InvalidParallelSetting(InvalidInputError):
    """A ParallelRunStep setting whose value (often a PipelineParameter's) v1 would refuse."""


def settings_for(step: dict[str, Any], params: dict[str, Any]) -> ParallelSettings | None:
    """The step's resolved settings (None: not a ParallelRunStep); InvalidParallelSetting names the step
    and the setting."""
    raw = step.get("parallel")
    if raw is None:
        return None
    try:
        return resolve_settings(ParallelSpec.model_validate(raw), params)
    except InvalidInputError as exc:
        raise InvalidParallelSetting(f"ParallelRunStep {step['name']!r}: {exc}") from None


def parallel_material(step: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """What of the settings the step's result depends on (reuse material's "parallel")."""
    settings = settings_for(step, params)
    if settings is None:
        return None
    spec = step["parallel"]
    data = {k: v for k, v in settings.to_json().items() if k not in SCHEDULING_ONLY}
    # which inputs are partitioned and which are whole, and where the file goes, shape the output too
    data["inputs"] = list(spec["inputs"])
    data["side_inputs"] = list(spec.get("side_inputs") or [])
    data["output"] = spec.get("output")
    return dict(json.loads(json.dumps(data)))


def checkpoint_key(material: dict[str, Any]) -> str:
    """The same work (inputs, code, environment, partitioning) gives the same key, whatever the error
    budget, the timeouts or the worker count."""
    from runyard.engine.reuse import fingerprint

    same_work = dict(material)
    same_work["parallel"] = {
        k: v for k, v in (material.get("parallel") or {}).items() if k not in RESUME_SAFE
    }
    return fingerprint(same_work)


def same_work(material: dict[str, Any], busy: list[tuple[str, Any]]) -> str | None:
    """Why a ParallelRunStep with this material may not start yet, or None. `busy`: (step run id,
    checkpoint key or reuse material) of the steps running or being prepared. The same work submitted
    twice must not run two drivers in one checkpoint; the second waits, then is reused or resumes."""
    key = checkpoint_key(material)
    for run_id, held in busy:
        if isinstance(held, dict):  # a step being prepared: its material (None parallel: another kind)
            held = checkpoint_key(held) if isinstance(held.get("parallel"), dict) else None
        if held == key:
            return (
                f"step run {run_id} is doing the same work (ParallelRunStep checkpoint {key[:12]}); this "
                "step starts when it ends, and is then reused or resumes where it stopped"
            )
    return None


def checkpoint_dir(ws: Workspace, key: str) -> Path:
    return ws.path / CHECKPOINT_ROOT / key


def _private_folder(folder: Path) -> None:
    """Make `folder` a real 0700 folder of its own: a link (or a file) planted there is removed, never
    followed, so neither its target nor the target's mode is touched."""
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        os.unlink(folder)  # a symlink (to a folder or not) or any other non-folder
    folder.mkdir(mode=0o700, exist_ok=True)
    if not stat.S_ISDIR(os.lstat(folder).st_mode):  # raced with another link: refuse it
        raise InvalidInputError(f"checkpoint folder {folder} is not a folder; remove it and rerun the step")
    os.chmod(folder, 0o700, follow_symlinks=False)  # mkdir's mode is cut by the umask


def open_checkpoint(ws: Workspace, key: str, fresh: bool = False) -> Path:
    """The checkpoint folder, made private (0700); `fresh` empties it first (regenerate_outputs).
    Anything at the key that is not a real folder (a planted symlink) is replaced, not followed."""
    folder = checkpoint_dir(ws, key)
    _private_folder(folder.parent)
    if fresh:
        remove_checkpoint(folder)
    _private_folder(folder)
    return folder


#: Temp files of the output's assembly (runyard/parallel/checkpoint.py: `.<name>.<pid>.tmp`) and other
#: dot-temp leftovers of a killed run: never carried into the next output.
def _is_leftover(rel: Path, append_row_file: str) -> bool:
    name = rel.name
    return str(rel) == append_row_file or (name.startswith(".") and name.endswith(".tmp"))


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    """`path`, resolved (so a link cannot lead out), lies strictly below one of `roots` (resolved)."""
    real = path.resolve()
    return any(real != r.resolve() and real.is_relative_to(r.resolve()) for r in roots)


def carry_output(
    checkpoint: Path, output: Path, append_row_file: str, roots: tuple[Path, ...] | None = None
) -> int:
    """Files the entry script wrote itself into the output folder (EntryScript.output_dir) in an earlier
    run of this checkpoint's work belong to mini-batches that will not run again: copy them into this
    run's output folder (not the append_row file, which the driver assembles, nor an assembly's temp
    file; nothing already there is replaced). Returns how many files were copied; remembers `output`
    for the next resume.

    The note naming the earlier output lies in the checkpoint, which any job of the workspace's user can
    rewrite: it is followed only to a folder below `roots` (the scheduler passes the workspace's work
    folder and datastores; by default the checkpoint's workspace folder) once links are resolved, and
    only regular files are copied (links, and folders reached through links, are left behind)."""
    note = checkpoint / OUTPUT_NOTE
    allowed = roots if roots is not None else (checkpoint.parent.parent,)
    copied = 0
    try:
        earlier: Path | None = Path(json.loads(note.read_text())["output"])
    except (OSError, ValueError, KeyError, TypeError):
        earlier = None
    if (
        earlier is not None
        and earlier.is_absolute()
        and earlier.is_dir()
        and _inside(earlier, allowed)
        and earlier.resolve() != output.resolve()
    ):
        for top, dirs, files in os.walk(earlier):  # never follows a linked folder
            dirs.sort()
            for name in sorted(files):
                path = Path(top) / name
                rel = path.relative_to(earlier)
                target = output / rel
                if path.is_symlink() or not path.is_file() or _is_leftover(rel, append_row_file):
                    continue
                if not os.path.lexists(target):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target, follow_symlinks=False)
                    copied += 1
    note.write_text(json.dumps({"output": str(output)}))
    return copied


def remove_checkpoint(folder: Path) -> None:
    """Forget a checkpoint whose step completed; only entries under a workspace's parallel/ are removed,
    and a link planted there is unlinked, never followed."""
    if folder.parent.name != CHECKPOINT_ROOT:
        return
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(folder, ignore_errors=True)  # rmtree does not follow links inside
    else:
        os.unlink(folder)


def _binding_modes(step: dict[str, Any]) -> dict[str, str]:
    """Each input's mode: "dataset" when the job reads a dataset object (direct dataset inputs and
    tabular views of upstream outputs), "path" when it gets a local folder or file."""
    modes: dict[str, str] = {}
    for binding in step.get("inputs", []):
        modes[binding["name"]] = "dataset" if binding.get("read") is not None else "path"
    for entry in step.get("datasets", []):
        modes[entry["name"]] = "dataset" if entry["mode"] == "direct" else "path"
    return modes


def job_document(
    step: dict[str, Any],
    settings: ParallelSettings,
    input_paths: dict[str, str],
    write_paths: dict[str, str],
    arguments: list[str],
    checkpoint: Path,
) -> dict[str, Any]:
    """The driver's job file (issue 14's contract, runyard/parallel/job.py)."""
    spec = step["parallel"]
    modes = _binding_modes(step)
    inputs = [
        {
            "name": name,
            "kind": spec["kind"],
            "source": modes[name],
            "path": os.path.abspath(input_paths[name]) if modes[name] == "path" else None,
        }
        for name in spec["inputs"]
    ]
    side_inputs = [
        {"name": name, "path": os.path.abspath(input_paths[name]) if modes[name] == "path" else None}
        for name in spec.get("side_inputs") or []
    ]
    output = spec.get("output")
    return {
        "v": JOB_VERSION,
        "step": step["name"],
        "entry_script": step["script"],
        "settings": settings.to_json(),
        "inputs": inputs,
        "side_inputs": side_inputs,
        "output": os.path.abspath(write_paths[output]) if output else None,
        "arguments": list(arguments),
        "checkpoint": str(checkpoint),
        "node": "0",
    }


def write_job(work: Path, document: dict[str, Any]) -> Path:
    """Write the job file through the driver's own model, so a shape it would refuse fails here."""
    work.mkdir(parents=True, exist_ok=True)
    return ParallelJob.model_validate(document).save(work / JOB_FILE)


def describe_settings(settings: ParallelSettings) -> str:
    """One line for 65_job_prep.txt."""
    unit = "files" if settings.kind == "file" else "bytes"
    return (
        f"ParallelRunStep: mini_batch_size {settings.mini_batch_size} {unit}, "
        f"{settings.process_count_per_node} worker(s), error_threshold {settings.error_threshold}, "
        f"run_invocation_timeout {settings.run_invocation_timeout:g} s, run_max_try {settings.run_max_try}"
    )


def failure_sentence(tail: list[str]) -> str | None:
    """The driver's one-sentence outcome ("ParallelRunStep failed: 12 of 200 files failed, ..."), the last
    line it prints when it stops (runyard/parallel/driver.py), for the first line of the step's error."""
    for line in reversed(tail):
        text = line.strip()
        if text.startswith(("ParallelRunStep failed:", "ParallelRunStep canceled:")):
            return text
    return None


def output_roots(ws: Workspace) -> tuple[Path, ...]:
    """Where an earlier run's output folder may lie: the step work folders (upload outputs are written
    there) and the workspace's datastores (mount outputs): never the database or another folder."""
    roots = [ws.work_dir]
    with contextlib.suppress(NotImplementedError):  # no local artifact root: only the work folders
        roots.append(ws.artifacts.local_path("datastores"))
    return tuple(roots)
