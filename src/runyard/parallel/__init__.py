"""ParallelRunStep: batch inference over files and tables in mini-batches, across worker processes.

    config.py       ParallelRunConfig (v1's signature, save_to_yaml / load_yaml) and its checks
    step.py         ParallelRunStep, a PythonScriptStep whose graph entry carries `parallel` (compile helpers)
    job.py          ParallelJob: the driver's job file, written by the scheduler (pydantic, version-checked)
    driver.py       `python -m runyard.parallel.driver`: the master role, hands out mini-batches
    agents.py       the driver's worker processes: spawn, authenticated handshake, kill a tree, stop
    worker.py       `python -u -P .../worker.py`: one worker process running the entry script (started by
                    path, so it loads nothing of runyard before the entry script asks for it)
    accounting.py   the error budget: error_threshold, allowed_failed_count / allowed_failed_percent
    checkpoint.py   completed mini-batches on disk; resume; the final append_row file
    partition.py    inputs -> mini-batches; loading one mini-batch in a worker
    partition_data.py  registered FileDataset / TabularDataset inputs through the data layer
    joblogs.py      v1's log folder layout (logs/sys, logs/user, logs/perf, job_result.txt)
    perf.py         the psutil resource sampler -> logs/perf/<node>/
    progress.py     ProgressSnapshot and read_progress(run), for the CLI, the studio and wait_for_completion
    _user/          what entry scripts import: azureml_user.parallel_run.EntryScript (and entry_script)

Names load lazily (PEP 562): the worker imports this package and must not pay for pipeline authoring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.lazy_exports import LazyExports

if TYPE_CHECKING:
    from runyard.parallel.config import ParallelRunConfig
    from runyard.parallel.step import ParallelRunStep

_SOURCES = {
    "ParallelRunConfig": "runyard.parallel.config",
    "ParallelRunStep": "runyard.parallel.step",
}

__all__ = ["ParallelRunConfig", "ParallelRunStep"]


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def __dir__() -> list[str]:
    return _exports.names()
