"""`from azureml_user.parallel_run import EntryScript`: what a ParallelRunStep entry script knows about
the worker it runs in (v1's API; azureml-surface.md §8.3).

Standard library only: it is imported in every worker. The values come from environment variables the
driver sets for each worker (AZUREML_PARALLEL_*); outside a worker they fall back to the current folder,
so an entry script can be tried by hand (`python -c "import score; score.init(); score.run([...])"`).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

__all__ = ["EntryScript"]

ENV_AGENT = "AZUREML_PARALLEL_AGENT_NAME"
ENV_LOG_DIR = "AZUREML_PARALLEL_LOG_DIR"  # logs/user/entry_script_log/<node>
ENV_LOG_FILE = "AZUREML_PARALLEL_LOG_FILE"  # <log dir>/<agent>.log.txt
ENV_OUTPUT_DIR = "AZUREML_PARALLEL_OUTPUT_DIR"
ENV_WORKING_DIR = "AZUREML_PARALLEL_WORKING_DIR"
ENV_LEVEL = "AZUREML_PARALLEL_LOGGING_LEVEL"


class EntryScript:
    """A singleton per process: `EntryScript()` always returns the same object."""

    _instance: EntryScript | None = None
    _lock = threading.Lock()
    _logger: logging.Logger | None

    def __new__(cls, *args: Any, **kwargs: Any) -> EntryScript:
        with cls._lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._logger = None
                cls._instance = instance
            return cls._instance

    @property
    def agent_name(self) -> str:
        """This worker's name, processNNN (the name of its log files)."""
        return os.environ.get(ENV_AGENT, "process000")

    @property
    def log_dir(self) -> str:
        """The folder of the entry script logs (logs/user/entry_script_log/<node>)."""
        return os.environ.get(ENV_LOG_DIR) or os.getcwd()

    @property
    def output_dir(self) -> str:
        """The step's output folder (it exists): files written here are the step's output."""
        path = os.environ.get(ENV_OUTPUT_DIR) or os.getcwd()
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def working_dir(self) -> str:
        """The job's working folder (the worker's current folder when it started)."""
        return os.environ.get(ENV_WORKING_DIR) or os.getcwd()

    @property
    def logger(self) -> logging.Logger:
        """A logger whose records go to logs/user/entry_script_log/<node>/<agent>.log.txt."""
        with self._lock:
            if self._logger is None:
                logger = logging.getLogger(f"azureml_user.parallel_run.{self.agent_name}")
                logger.setLevel(os.environ.get(ENV_LEVEL, "INFO").upper())
                path = os.environ.get(ENV_LOG_FILE) or os.path.join(
                    self.log_dir, f"{self.agent_name}.log.txt"
                )
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                handler = logging.FileHandler(path, encoding="utf-8")
                handler.setFormatter(
                    logging.Formatter("%(asctime)s|%(name)s|%(levelname)s|%(process)d|%(message)s")
                )
                logger.addHandler(handler)
                logger.propagate = False  # root logging goes to the stdout file; these records stay here
                self._logger = logger
            return self._logger

    def get_logger(self) -> logging.Logger:
        """runyard's alias of the `logger` property (some samples call it)."""
        return self.logger
