"""A ParallelRunStep's part of the graph (graph version 4), and the one place its settings are checked.

The graph keeps each tunable setting as a token (`{"literal": "10"}` or `{"param": "batch_size"}`), as
step arguments are kept, because v1 lets `mini_batch_size`, `node_count`, `process_count_per_node`,
`logging_level`, `run_invocation_timeout` and `run_max_try` be PipelineParameters. `resolve_settings`
turns the tokens and a run's parameter values into `ParallelSettings`, checking every value with the
rules v1 documents. The authoring objects (runyard/parallel/config.py), the scheduler (before it starts
the driver) and the driver itself call it, so a bad value gets the same message wherever it is found.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from runyard.engine.graph_errors import SAFE_PATTERN
from runyard.errors import InvalidInputError

__all__ = [
    "DEFAULT_APPEND_ROW_FILE",
    "TUNABLE_SETTINGS",
    "ParallelSettings",
    "ParallelSpec",
    "Token",
    "append_row_file_problem",
    "check_settings",
    "environment_variable_problem",
    "identity_variable_problem",
    "parse_mini_batch_size",
    "resolve_settings",
]

DEFAULT_APPEND_ROW_FILE = "parallel_run_step.txt"
#: v1's defaults when mini_batch_size is None: 10 files, or 1 MB of a tabular input.
DEFAULT_FILE_MINI_BATCH = 10
DEFAULT_TABULAR_MINI_BATCH = 1024 * 1024
LOGGING_LEVELS = ("WARNING", "INFO", "DEBUG")
#: The settings v1 lets be PipelineParameters (tunable per submission), in v1's documentation order.
TUNABLE_SETTINGS = (
    "mini_batch_size",
    "node_count",
    "process_count_per_node",
    "logging_level",
    "run_invocation_timeout",
    "run_max_try",
)
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG][bB])?\s*$")
_UNITS = {"": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
#: Characters v1 refuses in append_row_file_name (a UNIX file name, and none of these).
_BAD_FILE_CHARS = set('~"#%&*:<>?/\\{}|')

SafeName = Annotated[str, StringConstraints(pattern=SAFE_PATTERN)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class Token(_Frozen):
    """A setting's value: a literal (kept as text, as step arguments are) or a pipeline parameter."""

    literal: str | None = None
    param: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Token:
        if (self.literal is None) == (self.param is None):
            raise ValueError("a setting is either {'literal': text} or {'param': name}")
        return self


class ParallelSpec(_Frozen):
    """What the graph keeps of a ParallelRunConfig and a ParallelRunStep.

    `inputs` names the partitioned inputs (each is one of the step's `datasets` or `inputs` entries);
    `side_inputs` the ones given to every worker whole; `output` the step output that receives the
    append_row file (None only with summary_only); `kind` the inputs' type ("file" or "tabular")."""

    kind: Literal["file", "tabular"]
    inputs: tuple[SafeName, ...] = Field(min_length=1)
    side_inputs: tuple[SafeName, ...] = ()
    output: SafeName | None = None
    output_action: Literal["append_row", "summary_only"]
    append_row_file_name: str = DEFAULT_APPEND_ROW_FILE
    error_threshold: int = Field(ge=-1)
    allowed_failed_count: int | None = Field(default=None, ge=-1)
    allowed_failed_percent: float | None = Field(default=None, ge=0, le=100)
    mini_batch_size: Token | None = None
    node_count: Token = Token(literal="1")
    process_count_per_node: Token | None = None
    logging_level: Token = Token(literal="INFO")
    run_invocation_timeout: Token = Token(literal="60")
    run_max_try: Token = Token(literal="3")
    environment_variables: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ParallelSpec:
        problem = append_row_file_problem(self.append_row_file_name)
        if problem:
            raise ValueError(problem)
        if self.output_action == "append_row" and self.output is None:
            raise ValueError("output_action 'append_row' needs an output to write its file to")
        overlap = set(self.inputs) & set(self.side_inputs)
        if overlap:
            raise ValueError(f"{sorted(overlap)[0]!r} is both a partitioned input and a side input")
        for key, value in self.environment_variables.items():
            problem = environment_variable_problem(key, value) or identity_variable_problem(key)
            if problem:
                raise ValueError(problem)
        return self

    def tokens(self) -> dict[str, Token]:
        """The settings that may be PipelineParameters, by name (None ones left out)."""
        return {n: getattr(self, n) for n in TUNABLE_SETTINGS if getattr(self, n) is not None}


@dataclass(frozen=True)
class ParallelSettings:
    """Resolved, checked settings: what the driver runs with (also JSON in the driver's job file).

    `mini_batch_size` is a file count for file inputs and a byte count for tabular ones."""

    kind: str
    mini_batch_size: int
    error_threshold: int
    output_action: str
    append_row_file_name: str
    node_count: int
    process_count_per_node: int
    logging_level: str
    run_invocation_timeout: float
    run_max_try: int
    allowed_failed_count: int | None = None
    allowed_failed_percent: float | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParallelSettings:
        return cls(**data)


def append_row_file_problem(name: Any) -> str | None:
    """Why `name` cannot be append_row_file_name, or None."""
    if not isinstance(name, str) or not name.strip() or name in (".", ".."):
        return f"append_row_file_name {name!r} must be a file name such as 'parallel_run_step.txt'"
    bad = sorted(set(name) & _BAD_FILE_CHARS)
    if bad or "\x00" in name or len(name) > 255:
        return (
            f"append_row_file_name {name!r} is not a valid file name: it may not contain "
            f"{' '.join(sorted(_BAD_FILE_CHARS))} (found {' '.join(bad) or 'NUL or > 255 characters'})"
        )
    return None


def environment_variable_problem(key: Any, value: Any) -> str | None:
    """Why (key, value) cannot be an environment variable of a process, or None."""
    if not isinstance(key, str) or not isinstance(value, str):
        return f"environment variable {key!r:.60} must map a name to a text value"
    if not key or "=" in key or "\x00" in key or "\x00" in value:
        return f"environment variable {key!r:.60} cannot be set in a process"
    return None


def identity_variable_problem(key: str) -> str | None:
    """Why a step may not set `key` for its workers, or None: the variables that say which run a process
    belongs to, where it reports and with which token (RUNYARD_*, AZUREML_RUN_ID, AZUREML_ARM_*) are the
    job's identity, set by runyard; a worker told another one would log to, and be canceled as, that run."""
    if key.startswith("RUNYARD_") or key == "AZUREML_RUN_ID" or key.startswith("AZUREML_ARM_"):
        return (
            f"environment_variables may not set {key!r}: RUNYARD_*, AZUREML_RUN_ID and AZUREML_ARM_* "
            "say which run the workers belong to, and runyard sets them. Use another name."
        )
    return None


def check_settings(settings: ParallelSettings) -> None:
    """Check every value of resolved settings (InvalidInputError naming the setting): what
    resolve_settings makes, and what the driver reads back from its job file, which it must not trust
    more than the graph."""

    def whole(name: str, minimum: int, optional: bool = False) -> None:
        number = getattr(settings, name)
        if optional and number is None:
            return
        if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
            raise InvalidInputError(f"{name} must be a whole number of at least {minimum}; got {number!r}.")

    if settings.kind not in ("file", "tabular"):
        raise InvalidInputError(f"kind {settings.kind!r} must be 'file' or 'tabular'.")
    if settings.output_action not in ("append_row", "summary_only"):
        raise InvalidInputError(
            f"output_action {settings.output_action!r} must be 'append_row' or 'summary_only'."
        )
    problem = append_row_file_problem(settings.append_row_file_name)
    if problem:
        raise InvalidInputError(problem)
    for name in ("mini_batch_size", "node_count", "process_count_per_node", "run_max_try"):
        whole(name, 1)
    whole("error_threshold", -1)
    whole("allowed_failed_count", -1, optional=True)
    percent = settings.allowed_failed_percent
    if percent is not None and (
        isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100
    ):
        raise InvalidInputError(f"allowed_failed_percent must be between 0 and 100; got {percent!r}.")
    timeout = settings.run_invocation_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise InvalidInputError(f"run_invocation_timeout must be more than 0 seconds; got {timeout!r}.")
    if settings.logging_level not in LOGGING_LEVELS:
        raise InvalidInputError(
            f"logging_level {settings.logging_level!r} must be one of {', '.join(LOGGING_LEVELS)}."
        )
    if not isinstance(settings.environment_variables, dict):
        raise InvalidInputError("environment_variables must map names to text values.")
    for key, value in settings.environment_variables.items():
        problem = environment_variable_problem(key, value)
        if problem:
            raise InvalidInputError(problem)


def parse_mini_batch_size(value: Any, kind: str) -> int:
    """v1's mini_batch_size: a file count (file inputs, >= 1) or a size such as 1024, '1024KB', '10MB',
    '1GB' (tabular inputs; KB/MB/GB are powers of 1024). None gives v1's defaults."""
    if value is None or value == "":
        return DEFAULT_FILE_MINI_BATCH if kind == "file" else DEFAULT_TABULAR_MINI_BATCH
    if isinstance(value, bool):
        raise InvalidInputError(f"mini_batch_size {value!r} is not a number; use e.g. 10 or '1MB'.")
    match = _SIZE.match(str(value))
    if not match:
        example = (
            "a file count such as 10" if kind == "file" else "a size such as 1024, '1024KB', '10MB' or '1GB'"
        )
        raise InvalidInputError(f"mini_batch_size {value!r} does not parse: give {example}.")
    number, unit = int(match.group(1)), (match.group(2) or "").lower()
    if kind == "file" and unit:
        raise InvalidInputError(
            f"mini_batch_size {value!r} is a size, but the input is a FileDataset: give a file count such as 10."
        )
    if number < 1:
        raise InvalidInputError(f"mini_batch_size {value!r} must be at least 1.")
    return number * _UNITS[unit]


def _int(name: str, value: Any, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not a whole number.") from None
    if number < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum}; got {number}.")
    return number


def resolve_settings(spec: ParallelSpec, params: dict[str, Any]) -> ParallelSettings:
    """The settings with parameter values substituted and every value checked (InvalidInputError with
    the setting's name otherwise). `params`: the run's parameter values by name."""

    def value(token: Token | None) -> Any:
        if token is None:
            return None
        if token.param is not None:
            if token.param not in params:
                raise InvalidInputError(f"PipelineParameter {token.param!r} has no value in this run.")
            return params[token.param]
        return token.literal

    level = str(value(spec.logging_level)).strip().upper()
    if level not in LOGGING_LEVELS:
        raise InvalidInputError(f"logging_level {level!r} must be one of {', '.join(LOGGING_LEVELS)}.")
    try:
        timeout = float(str(value(spec.run_invocation_timeout)).strip())
    except ValueError:
        raise InvalidInputError(
            f"run_invocation_timeout {value(spec.run_invocation_timeout)!r} is not a number of seconds."
        ) from None
    if not timeout > 0:
        raise InvalidInputError(f"run_invocation_timeout must be more than 0 seconds; got {timeout:g}.")
    processes = value(spec.process_count_per_node)
    settings = ParallelSettings(
        kind=spec.kind,
        mini_batch_size=parse_mini_batch_size(value(spec.mini_batch_size), spec.kind),
        error_threshold=spec.error_threshold,
        output_action=spec.output_action,
        append_row_file_name=spec.append_row_file_name,
        node_count=_int("node_count", value(spec.node_count), 1),
        # v1: None means one worker per CPU core
        process_count_per_node=_int("process_count_per_node", processes, 1)
        if processes is not None
        else _cpu_count(),
        logging_level=level,
        run_invocation_timeout=timeout,
        run_max_try=_int("run_max_try", value(spec.run_max_try), 1),
        allowed_failed_count=spec.allowed_failed_count,
        allowed_failed_percent=spec.allowed_failed_percent,
        environment_variables=dict(spec.environment_variables),
    )
    check_settings(settings)
    return settings


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
