"""How a run's environment reads on its pages: the rows the studio's run overview and `runyard runs show`
print from the run record's `environmentUsed` (written by compute/process_job.py when the job's
environment was prepared). One function, so both faces say the same thing."""

from __future__ import annotations

from typing import Any


def environment_rows(used: object) -> list[tuple[str, str]] | None:
    """Name, hash, Python, how the build came about, interpreter and requirements; None for a run recorded
    without an environment (it ran in the interpreter that submitted it)."""
    if not isinstance(used, dict):
        return None
    info: dict[str, Any] = used
    if info.get("userManaged"):
        return [
            ("Name", str(info.get("name") or "none")),
            ("Interpreter", f"{info.get('interpreter')} (user-managed: used as it is, nothing built)"),
        ]
    seconds = float(info.get("seconds") or 0)
    if info.get("built"):
        how = f"built by this run in {seconds:.1f} s (azureml-logs/20_image_build_log.txt)"
    elif info.get("waited"):
        how = f"waited {seconds:.1f} s for another run's build, then reused it"
    else:
        how = f"reused an earlier build ({seconds * 1000:.1f} ms)"
    requirements = [str(r) for r in info.get("requirements") or []]
    return [
        ("Name", str(info.get("name") or "unnamed")),
        ("Hash", str(info.get("hash") or "")[:12]),
        ("Python", str(info.get("python") or "")),
        ("Build", how),
        ("Interpreter", str(info.get("interpreter") or "")),
        ("Requirements", ", ".join(requirements) if requirements else "none (runyard's layer only)"),
    ]
