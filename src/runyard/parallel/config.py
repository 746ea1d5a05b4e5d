"""v1's ParallelRunConfig: how a ParallelRunStep runs its entry script (azureml-surface.md §8.1).

Every literal value is checked here, when the user writes it, with the same functions the scheduler and
the driver use (engine/graph_parallel.py), so a bad value gets one message wherever it is found. Two
checks wait for the step: whether mini_batch_size fits the inputs' kind (a size such as '10MB' is for
tabular inputs only), and the values of settings given as PipelineParameters (checked when the pipeline
is validated, with the values it is submitted with).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runyard.compat import v1_keywords
from runyard.engine.graph_parallel import (
    DEFAULT_APPEND_ROW_FILE,
    TUNABLE_SETTINGS,
    ParallelSpec,
    Token,
    append_row_file_problem,
    identity_variable_problem,
    resolve_settings,
)
from runyard.errors import InvalidInputError
from runyard.pipeline.data import PipelineParameter

__all__ = ["OUTPUT_ACTIONS", "PARAMETER_SETTINGS", "ParallelRunConfig"]

OUTPUT_ACTIONS = ("append_row", "summary_only")
#: The settings v1 lets be PipelineParameters (tunable per submission).
PARAMETER_SETTINGS = TUNABLE_SETTINGS
YAML_KEY = "parallel_run_config"


def _whole(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} {value!r} is not a whole number greater than or equal to {minimum}.")
    return value


def _entry_script(entry_script: Any, source_directory: Any) -> tuple[str, str]:
    """(entry_script relative to source_directory, source_directory). Without a source_directory the
    entry script may be any path: its folder becomes the source directory (v1's documented rule)."""
    if not isinstance(entry_script, (str, os.PathLike)) or not str(entry_script).strip():
        raise InvalidInputError(
            "ParallelRunConfig needs entry_script='score.py', the script with init() and run()."
        )
    script = Path(str(entry_script).strip()).expanduser()
    if source_directory is None:
        path = script.resolve()
        if not path.is_file():
            raise InvalidInputError(
                f"entry_script {str(entry_script)!r} is not a file (looked at {path}). Give the path of the "
                "script, or source_directory= and the script's path inside it."
            )
        return path.name, str(path.parent)
    if not isinstance(source_directory, (str, os.PathLike)):
        raise InvalidInputError(
            f"source_directory must be a folder path, not {type(source_directory).__name__}."
        )
    folder = Path(str(source_directory).strip()).expanduser().resolve()
    if not folder.is_dir():
        raise InvalidInputError(
            f"source_directory {str(source_directory)!r} is not a folder (looked at {folder})."
        )
    path = (folder / script).resolve()
    if not path.is_relative_to(folder):
        raise InvalidInputError(
            f"entry_script {str(entry_script)!r} lies outside source_directory {folder}; with a source_directory "
            "the entry script is a path inside it, such as 'score.py'."
        )
    if not path.is_file():
        raise InvalidInputError(
            f"entry_script {str(entry_script)!r} does not exist in source_directory {folder}; check both."
        )
    return path.relative_to(folder).as_posix(), str(source_directory)


def _environment_variables(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"environment_variables must be a dict of str to str, not {type(value).__name__}."
        )
    found = {str(k): str(v) for k, v in value.items()}
    for key, text in found.items():
        if not key or "=" in key or "\x00" in key or "\x00" in text:
            raise InvalidInputError(
                f"environment variable {key!r:.60} cannot be set in a process: a name is not empty and holds "
                "no '=' or NUL, a value no NUL."
            )
        problem = identity_variable_problem(key)
        if problem:
            raise InvalidInputError(problem)
    return found


def token(value: Any) -> Token | None:
    """A setting as the graph keeps it: {'param': name} for a PipelineParameter, else its text."""
    if value is None:
        return None
    if isinstance(value, PipelineParameter):
        return Token(param=value.name)
    return Token(literal=str(value))


@v1_keywords
class ParallelRunConfig:
    """How a ParallelRunStep runs: the entry script, its environment, the mini-batch size, the worker count
    and the error budget. v1's names, order and defaults; `mini_batch_size`, `node_count`,
    `process_count_per_node`, `logging_level`, `run_invocation_timeout` and `run_max_try` may be
    PipelineParameters."""

    def __init__(
        self,
        environment: Any,
        entry_script: str,
        error_threshold: int,
        output_action: str,
        compute_target: Any,
        node_count: int | PipelineParameter,
        process_count_per_node: int | PipelineParameter | None = None,
        mini_batch_size: int | str | PipelineParameter | None = None,
        source_directory: str | os.PathLike[str] | None = None,
        description: str | None = None,
        logging_level: str | PipelineParameter = "INFO",
        run_invocation_timeout: int | PipelineParameter = 60,
        run_max_try: int | PipelineParameter = 3,
        append_row_file_name: str | None = None,
        allowed_failed_count: int | None = None,
        allowed_failed_percent: float | None = None,
        partition_keys: list[str] | None = None,
        environment_variables: dict[str, str] | None = None,
    ) -> None:
        """Raises InvalidInputError (a ValueError, as v1 raises) naming the setting and the fix."""
        from runyard.environments.environment import Environment

        if not isinstance(environment, Environment):
            raise InvalidInputError(
                f"ParallelRunConfig: environment must be an Environment, not {type(environment).__name__}. "
                "Use Environment('name') or Environment.get(ws, 'name')."
            )
        if partition_keys is not None:
            raise InvalidInputError(
                "ParallelRunConfig: partition_keys is not supported yet in runyard (it needs partitioned "
                "datasets). Use mini_batch_size to say how many files, or how much of a table, one run() gets."
            )
        if isinstance(error_threshold, PipelineParameter) or not isinstance(error_threshold, int):
            raise InvalidInputError(
                f"error_threshold {error_threshold!r} is not a whole number greater than or equal to -1 "
                "(-1 ignores every failure); it cannot be a PipelineParameter."
            )
        _whole("error_threshold", error_threshold, -1)
        if not isinstance(output_action, str) or output_action.strip().lower() not in OUTPUT_ACTIONS:
            raise InvalidInputError(
                f"output_action {output_action!r} must be 'append_row' (one output file of every returned "
                "row) or 'summary_only' (the entry script writes its own output)."
            )
        _whole("allowed_failed_count", allowed_failed_count, -1)
        if allowed_failed_percent is not None and (
            isinstance(allowed_failed_percent, bool)
            or not isinstance(allowed_failed_percent, (int, float))
            or not 0 <= allowed_failed_percent <= 100
        ):
            raise InvalidInputError(
                f"allowed_failed_percent {allowed_failed_percent!r} must be a number from 0 to 100."
            )
        if append_row_file_name is not None:
            problem = append_row_file_problem(append_row_file_name)
            if problem:
                raise InvalidInputError(problem)
        if description is not None and not isinstance(description, str):
            raise InvalidInputError(f"description must be text, not {type(description).__name__}.")
        if node_count is None:
            raise InvalidInputError("ParallelRunConfig needs node_count (1 on this machine).")
        self.environment = environment
        self.entry_script, self.source_directory = _entry_script(entry_script, source_directory)
        self.error_threshold = error_threshold
        self.output_action = output_action.strip().lower()
        self.compute_target = "local" if compute_target is None else compute_target
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.mini_batch_size = mini_batch_size
        self.description = description
        self.logging_level = logging_level
        self.run_invocation_timeout = run_invocation_timeout
        self.run_max_try = run_max_try
        self.append_row_file_name = append_row_file_name
        self.allowed_failed_count = allowed_failed_count
        self.allowed_failed_percent = allowed_failed_percent
        self.partition_keys = partition_keys
        self._environment_variables = _environment_variables(environment_variables)
        self._check_literals()

    @property
    def environment_variables(self) -> dict[str, str]:
        """Set in every worker process, on top of the environment's own variables."""
        return self._environment_variables

    def parameters(self) -> list[PipelineParameter]:
        """The PipelineParameters among the settings, in PARAMETER_SETTINGS order."""
        found = [getattr(self, n) for n in PARAMETER_SETTINGS]
        return [p for p in found if isinstance(p, PipelineParameter)]

    def to_spec(
        self,
        kind: str,
        inputs: tuple[str, ...],
        side_inputs: tuple[str, ...],
        output: str | None,
        *,
        literals_only: bool = False,
    ) -> ParallelSpec:
        """The graph's `parallel` entry for a step with these graph input and output names (with
        literals_only, PipelineParameter settings are left at their defaults)."""
        tokens = {n: token(getattr(self, n)) for n in PARAMETER_SETTINGS}
        if literals_only:
            tokens = {n: t for n, t in tokens.items() if t is not None and t.param is None}
        return ParallelSpec(
            kind=kind,  # type: ignore[arg-type]
            inputs=inputs,
            side_inputs=side_inputs,
            output=output,
            output_action=self.output_action,  # type: ignore[arg-type]
            append_row_file_name=self.append_row_file_name or DEFAULT_APPEND_ROW_FILE,
            error_threshold=self.error_threshold,
            allowed_failed_count=self.allowed_failed_count,
            allowed_failed_percent=self.allowed_failed_percent,
            environment_variables=dict(self._environment_variables),
            **{n: t for n, t in tokens.items() if t is not None},
        )

    def _check_literals(self) -> None:
        """Each literal setting through resolve_settings, the one checker; PipelineParameters wait for the
        pipeline's validation. 'tabular' accepts every mini_batch_size that parses for either kind."""
        for name in PARAMETER_SETTINGS:
            value = getattr(self, name)
            if name != "mini_batch_size" and isinstance(value, bool):
                raise InvalidInputError(f"{name} {value!r} is not a number.")
            if (
                name == "mini_batch_size"
                and value is not None
                and not isinstance(value, (int, str, PipelineParameter))
            ):
                raise InvalidInputError(
                    f"mini_batch_size {value!r} must be a file count such as 10 or a size such as '1MB'."
                )
        try:
            resolve_settings(self.to_spec("tabular", ("input",), (), "output", literals_only=True), {})
        except InvalidInputError as exc:
            if "does not parse" not in str(exc):
                raise
            raise InvalidInputError(
                f"mini_batch_size {self.mini_batch_size!r} does not parse: give a file count such as 10 "
                "(FileDataset inputs) or a size such as 1024, '1024KB', '10MB' or '1GB' (TabularDataset inputs)."
            ) from None

    # -- yaml -------------------------------------------------------------------------------------------
    def save_to_yaml(self, path: str | os.PathLike[str]) -> None:
        """Write this configuration as YAML (v1's `parallel_run_config` document). A registered environment
        is saved by name and version; any other by its definition. PipelineParameters keep their names."""
        import yaml

        from runyard.environments.definition import environment_definition

        def value(setting: Any) -> Any:
            if isinstance(setting, PipelineParameter):
                return {"param": setting.name, "default": setting.default_value}
            return setting

        config: dict[str, Any] = {n: value(getattr(self, n)) for n in PARAMETER_SETTINGS}
        config.update(
            entry_script=self.entry_script,
            source_directory=self.source_directory,
            error_threshold=self.error_threshold,
            output_action=self.output_action,
            compute_target_name=str(getattr(self.compute_target, "name", self.compute_target)),
            description=self.description,
            append_row_file_name=self.append_row_file_name,
            allowed_failed_count=self.allowed_failed_count,
            allowed_failed_percent=self.allowed_failed_percent,
            environment_variables=dict(self._environment_variables),
        )
        if self.environment.version is not None:
            config.update(
                environment_name=self.environment.name, environment_version=self.environment.version
            )
        else:
            config["environment"] = (
                environment_definition(self.environment) or self.environment.to_definition()
            )
        Path(path).write_text(yaml.safe_dump({YAML_KEY: config}, sort_keys=False))

    @staticmethod
    def load_yaml(workspace: Any, path: str | os.PathLike[str]) -> ParallelRunConfig:
        """Read what save_to_yaml wrote; a named environment and compute target are looked up in `workspace`."""
        import yaml

        from runyard.environments.environment import Environment

        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInputError(f"Cannot read a ParallelRunConfig from {path}: {exc}") from exc
        config = document.get(YAML_KEY) if isinstance(document, dict) else None
        if not isinstance(config, dict):
            raise InvalidInputError(f"{path} has no '{YAML_KEY}' mapping; write one with save_to_yaml(path).")
        if config.get("environment_name"):
            version = config.get("environment_version")
            environment = Environment.get(
                workspace, config["environment_name"], None if version is None else str(version)
            )
        elif isinstance(config.get("environment"), dict):
            environment = Environment.from_definition(config["environment"])
        else:
            raise InvalidInputError(f"{path}: the configuration names no environment.")

        def value(raw: Any) -> Any:
            if isinstance(raw, dict) and set(raw) == {"param", "default"}:
                return PipelineParameter(str(raw["param"]), raw["default"])
            return raw

        return ParallelRunConfig(
            environment=environment,
            entry_script=config.get("entry_script"),  # type: ignore[arg-type]
            error_threshold=config.get("error_threshold"),  # type: ignore[arg-type]
            output_action=config.get("output_action"),  # type: ignore[arg-type]
            compute_target=_compute_target(workspace, config.get("compute_target_name")),
            node_count=value(config.get("node_count")),
            process_count_per_node=value(config.get("process_count_per_node")),
            mini_batch_size=value(config.get("mini_batch_size")),
            source_directory=config.get("source_directory"),
            description=config.get("description"),
            logging_level=value(config.get("logging_level", "INFO")),
            run_invocation_timeout=value(config.get("run_invocation_timeout", 60)),
            run_max_try=value(config.get("run_max_try", 3)),
            append_row_file_name=config.get("append_row_file_name"),
            allowed_failed_count=config.get("allowed_failed_count"),
            allowed_failed_percent=config.get("allowed_failed_percent"),
            environment_variables=config.get("environment_variables"),
        )

    def __repr__(self) -> str:
        return (
            f"ParallelRunConfig(entry_script={self.entry_script!r}, source_directory={self.source_directory!r}, "
            f"output_action={self.output_action!r}, mini_batch_size={self.mini_batch_size!r})"
        )


def _compute_target(workspace: Any, name: Any) -> Any:
    """'local' (or nothing) stays a name; any other name is looked up as v1 does (ComputeTarget(ws, name))."""
    if name in (None, "", "local"):
        return "local"
    from runyard.core.compute_target import ComputeTarget

    return ComputeTarget(workspace, str(name))
