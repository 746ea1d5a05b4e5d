"""Step fingerprints and reuse decisions that explain themselves.

The fingerprint is the sha256 of the step's canonical "material" (sorted-key JSON, no timestamps):
step type, script, resolved arguments and params, the source snapshot id, the environment, the
content hashes of its inputs, and its output declarations. The material is stored beside the
fingerprint on the step run, so the reason a step reran is computed from the same bytes as the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from runyard.engine.dataset_inputs import explain_input

#: Material keys kept for reasons only: per-file source hashes (the snapshot id covers them) and what each
#: dataset input was (its content hash in "inputs" is what counts).
UNHASHED = ("source_files", "input_details")
#: 3: output hashes became per-file manifest hashes (engine/output_manifest.py).
#: 4: "environment" became the environment's build identity (environment_material), not its name.
FINGERPRINT_VERSION = 4


@dataclass(frozen=True)
class ReuseDecision:
    reused: bool
    reason: str  # one sentence for people: "file train.py changed (and 2 others)"
    changed: tuple[str, ...] = ()  # machine-readable: "source:train.py", "arg:--lr", "input:prepared", …
    reused_run_id: str | None = None
    details: list[str] = field(default_factory=list)  # one line per difference

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed"] = list(self.changed)
        return data


def environment_material(plan: Any, definition: dict[str, Any] | None) -> dict[str, Any]:
    """What of a step's environment its result depends on: the plan's summary (content hash, Python,
    requirements; environments/plan.py), the environment's variables, and a user-managed environment's
    interpreter. The name is kept for reasons only: as in v1, an environment's identity is its content, so
    a renamed environment with the same packages is reused (see `fingerprint`)."""
    material = dict(plan.summary())
    variables = (definition or {}).get("environmentVariables") or {}
    if variables:
        material["variables"] = {str(k): str(v) for k, v in dict(variables).items()}
    if plan.user_managed and definition is not None:
        material["interpreter"] = plan.interpreter
    return material


def fingerprint(material: dict[str, Any]) -> str:
    hashed = {k: v for k, v in material.items() if k not in UNHASHED}
    if isinstance(hashed.get("environment"), dict):  # its name does not count (environment_material)
        hashed["environment"] = _identity(hashed["environment"])
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def step_material(
    step: dict[str, Any],
    resolved_args: list[str],
    resolved_params: dict[str, str],
    source_files: dict[str, str],
    input_hashes: dict[str, str],
    input_details: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    parallel: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Plain JSON values only, so a material read back from the store compares equal to a fresh one.
    `input_details` (dataset inputs: what each was, where its per-file manifest is) explains reruns.
    `environment`: environment_material of the step's plan (the graph's environment entry when absent).
    `parallel`: a ParallelRunStep's resolved settings less the scheduling-only ones
    (engine/step_parallel.py): absent for other steps, whose fingerprints stay as they were."""
    material = {
        "v": FINGERPRINT_VERSION,
        "name": step["name"],  # as in v1: two steps that differ only by name do not reuse each other
        "type": step["type"],
        "script": step["script"],
        "arguments": resolved_args,
        "params": resolved_params,
        "source": step["source"]["snapshot"],
        "source_files": source_files,
        "environment": environment if environment is not None else step["environment"],
        "inputs": input_hashes,
        "outputs": sorted(
            (o["name"], o["mode"], o["datastore"], o["destination"] or "") for o in step["outputs"]
        ),
        "version": step.get("version"),
        "compute_target": step["compute_target"],
    }
    if input_details:
        material["input_details"] = input_details
    if parallel is not None:
        material["parallel"] = parallel
    return dict(json.loads(json.dumps(material, default=str)))


def _identity(environment: Any) -> Any:
    return (
        {k: v for k, v in environment.items() if k != "name"}
        if isinstance(environment, dict)
        else environment
    )


def environment_change(old: Any, new: Any) -> str:
    """ "environment 'train-env' changed: scikit-learn 1.4 → 1.5" (environments/plan.requirement_changes)."""
    name = new.get("name") if isinstance(new, dict) else None
    label = f"environment {name!r}" if name else "the environment"
    if not (isinstance(old, dict) and isinstance(new, dict) and "hash" in old and "hash" in new):
        return "environment changed"  # a material written before environments were built
    from runyard.environments.plan import requirement_changes

    changes = list(requirement_changes(old, new))
    if old.get("userManaged") != new.get("userManaged"):
        changes.append("user-managed" if new.get("userManaged") else "now built by runyard")
    if old.get("interpreter") != new.get("interpreter") and new.get("userManaged"):
        changes.append(f"interpreter {old.get('interpreter')} → {new.get('interpreter')}")
    if old.get("variables") != new.get("variables"):
        changes.append("environment variables changed")
    if not changes and old.get("hash") != new.get("hash"):
        changes.append(f"build hash {str(old['hash'])[:12]} → {str(new['hash'])[:12]}")
    return f"{label} changed: " + ", ".join(changes) if changes else f"{label} changed"


def _args_diff(old: list[str], new: list[str]) -> list[tuple[str, str, str]]:
    """Pair up `--flag value` arguments so a change reads 'argument --lr changed from 0.1 to 0.2'."""

    def pairs(args: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        index = 0
        while index < len(args):
            token = args[index]
            if token.startswith("-") and index + 1 < len(args) and not args[index + 1].startswith("--"):
                out[token] = args[index + 1]
                index += 2
            else:
                out[f"#{index}"] = token
                index += 1
        return out

    a, b = pairs(old), pairs(new)
    return [
        (k, a.get(k, "(absent)"), b.get(k, "(absent)"))
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def _setting(settings: dict[str, Any], key: str) -> str:
    """A ParallelRunStep setting as a reason shows it: "mini_batch_size 10 → 20"."""
    if key not in settings:
        return "(absent)"
    value = settings[key]
    return "None" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


OUTPUTS_GONE = "an earlier run with these exact inputs exists, but its outputs are no longer present"


def explain(
    old: dict[str, Any],
    new: dict[str, Any],
    input_sources: dict[str, str],
    outputs_problem: str | None = None,
) -> ReuseDecision:
    """Why `new` cannot reuse `old` (the latest completed run of the same step), most useful reason first.

    `outputs_problem` is what `verify_output` said about the outputs of a run with the same fingerprint
    ("file model.pkl in output 'model' of run X was deleted"); it is the reason when nothing else changed.
    """
    changed: list[str] = []
    details: list[str] = []
    files_old, files_new = old.get("source_files", {}), new.get("source_files", {})
    touched = sorted(
        [f for f in files_new if files_old.get(f) != files_new[f]]
        + [f for f in files_old if f not in files_new]
    )
    for name in touched:
        what = "added" if name not in files_old else "removed" if name not in files_new else "changed"
        changed.append(f"source:{name}")
        details.append(f"file {name} {what}")
    for flag, before, after in _args_diff(old.get("arguments", []), new.get("arguments", [])):
        label = f"argument {flag}" if not flag.startswith("#") else f"argument {int(flag[1:]) + 1}"
        changed.append(f"arg:{flag}")
        details.append(f"{label} changed from {before} to {after}")
    for key in sorted(set(old.get("params", {})) | set(new.get("params", {}))):
        if old.get("params", {}).get(key) != new.get("params", {}).get(key):
            changed.append(f"param:{key}")
            details.append(
                f"param {key} changed from {old.get('params', {}).get(key)} to {new['params'].get(key)}"
            )
    for name in sorted(set(old.get("inputs", {})) | set(new.get("inputs", {}))):
        if old.get("inputs", {}).get(name) != new.get("inputs", {}).get(name):
            changed.append(f"input:{name}")
            origin = input_sources.get(name)
            about = (old.get("input_details") or {}).get(name), (new.get("input_details") or {}).get(name)
            if origin:
                details.append(f"input from step {origin!r} changed")
            else:
                details.append(explain_input(name, *about))
    old_settings, new_settings = old.get("parallel") or {}, new.get("parallel") or {}
    both = bool(old_settings) and bool(new_settings)  # else the step type changed: that reason says it
    for key in sorted(set(old_settings) | set(new_settings) if both else ()):
        if old_settings.get(key) != new_settings.get(key):
            changed.append(f"parallel:{key}")
            details.append(f"{key} {_setting(old_settings, key)} → {_setting(new_settings, key)}")
    if _identity(old.get("environment")) != _identity(new.get("environment")):
        changed.append("environment")
        details.append(environment_change(old.get("environment"), new.get("environment")))
    simple = [
        ("name", "step name changed"),
        ("script", "script name changed"),
        ("type", "step type changed"),
        ("outputs", "outputs changed"),
        ("version", "step version changed"),
        ("compute_target", "compute target changed"),
        ("v", "runyard's fingerprint format changed"),
    ]
    for key, text in simple:
        if old.get(key) != new.get(key):
            changed.append(key)
            details.append(text)
    if not details:
        sentence = outputs_problem or OUTPUTS_GONE
        return ReuseDecision(False, sentence, ("outputs-missing",), None, [sentence])
    first_files = [d for d in details if d.startswith("file ")]
    if first_files and len(first_files) > 1:
        reason = (
            f"{first_files[0]} (and {len(first_files) - 1} other file{'s' if len(first_files) > 2 else ''})"
        )
        rest = [d for d in details if not d.startswith("file ")]
        reason = "; ".join([reason, *rest])
    else:
        reason = "; ".join(details)
    return ReuseDecision(False, reason, tuple(changed), None, details)
