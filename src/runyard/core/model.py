"""Model registry: named, versioned files or folders, usable from inside a running script."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords
from runyard.errors import InvalidInputError, ModelNotFound
from runyard.store import ModelRecord

if TYPE_CHECKING:
    from runyard.core.run import Run
    from runyard.core.workspace import Workspace

_NO_DATASETS = "models do not list datasets; the lineage of the run that produced the model does"
_NO_DEPLOY = "runyard does not deploy models"
NAME_RULE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-._]{0,254}$")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise InvalidInputError(
            f"Model name {name!r} is not allowed: use 1-255 letters, digits, '-', '.' or '_', "
            "starting with a letter or digit."
        )
    return name


def _check_version(version: Any, where: str) -> None:
    """A version is an int (or None for the latest); a string would match on SQLite and fail on PostgreSQL."""
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise InvalidInputError(f"{where}: version must be an int, got {version!r}.")


@v1_keywords
class Model:
    """A registered model version. v1's filters on lookup (tags, properties, run_id, model_framework)
    pick the latest version that matches."""

    class Framework:
        CUSTOM = "Custom"
        TENSORFLOW = "TensorFlow"
        SCIKITLEARN = "ScikitLearn"
        ONNX = "Onnx"
        TFKERAS = "TfKeras"
        PYTORCH = "PyTorch"
        MULTI = "Multi"

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: Any = None,
        properties: Any = None,
        version: int | None = None,
        run_id: str | None = None,
        model_framework: str | None = None,
        expand: bool = True,
        **kwargs: Any,
    ) -> None:
        check_keywords(
            "Model",
            {k: v for k, v in kwargs.items() if not k.startswith("_")},
            [
                "workspace",
                "name",
                "id",
                "tags",
                "properties",
                "version",
                "run_id",
                "model_framework",
                "expand",
            ],
        )
        if id is not None:
            name, _sep, ver = id.partition(":")
            if ver and not ver.isdigit():
                raise InvalidInputError(f"Model id {id!r} is not 'name:version' with an integer version.")
            version = int(ver) if ver else version
        _check_version(version, "Model()")
        if name is None:
            raise InvalidInputError("Model(workspace, name) needs a name (or id='name:version').")
        record = workspace.store.get_model(name, version)
        if tags or properties or run_id is not None or model_framework is not None:
            found = [
                m
                for m in Model.list(
                    workspace,
                    name,
                    tags=tags,
                    properties=properties,
                    run_id=run_id,
                    model_framework=model_framework,
                )
                if version is None or m.version == version
            ]
            if not found:
                raise ModelNotFound(name, version, "the registry (no version matches the filters given)")
            record = workspace.store.get_model(name, max(m.version for m in found))
        self._load(workspace, record)

    def _load(self, workspace: Workspace, record: ModelRecord) -> None:
        self.workspace = workspace
        self.name = record.name
        self.version = record.version
        self.id = f"{record.name}:{record.version}"
        self.tags = dict(record.tags)
        self.properties = dict(record.properties)
        self.description = record.description
        self.run_id = record.run_id
        self.created_time = record.created_time
        self.model_framework = record.framework
        self._path = record.path

    @classmethod
    def _from_record(cls, workspace: Workspace, record: ModelRecord) -> Model:
        model = cls.__new__(cls)
        model._load(workspace, record)
        return model

    @property
    def url(self) -> str:
        """Where the model's file or folder is stored."""
        return str(self.workspace.artifacts.local_path(self._path))

    @classmethod
    @v1_ignores(
        datasets=_NO_DATASETS,
        model_framework_version="the registry records the framework's name only",
        sample_input_dataset=_NO_DATASETS,
        sample_output_dataset=_NO_DATASETS,
        resource_configuration=_NO_DEPLOY,
    )
    def register(
        cls,
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        datasets: Any = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: list[str] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
    ) -> Model:
        """Copy a local file or folder into the registry as the next version of `model_name`."""
        _check_name(model_name)
        source = Path(model_path)
        if not source.exists():
            raise InvalidInputError(
                f"Model.register: {source} does not exist. Pass the path of a local file or folder."
            )
        return cls._store_version(
            workspace,
            source,
            model_name,
            tags,
            properties,
            description,
            model_framework,
            run_id=None,
            child_paths=child_paths,
        )

    @classmethod
    def _store_version(
        cls,
        workspace: Workspace,
        source: Path,
        name: str,
        tags: Any,
        properties: Any,
        description: str | None,
        framework: str | None,
        run_id: str | None,
        child_paths: list[str] | None = None,
    ) -> Model:
        """Copy into a staging folder, take a version number, then rename the folder into place, so a
        reader never sees a version whose files are half copied."""
        root = workspace.artifacts.local_path(f"models/{name}")
        staging = root / f".staging-{uuid.uuid4().hex}"
        target = staging / source.name
        if source.is_dir():
            if child_paths:
                for child in child_paths:
                    (target / child).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source / child, target / child)
            else:
                shutil.copytree(source, target)
        else:
            staging.mkdir(parents=True)
            shutil.copy2(source, target)
        record = workspace.store.register_model(
            ModelRecord(
                name=name,
                version=0,
                path=f"models/{name}/{{version}}/{source.name}",
                created_time=time.time(),
                tags={k: v for k, v in (tags or {}).items()},
                properties=dict(properties or {}),
                description=description,
                run_id=run_id,
                framework=framework,
            )
        )
        if workspace.artifacts.is_local:
            os.replace(staging, root / str(record.version))
        else:  # a server workspace: upload from the local staging copy, then drop it
            if target.is_dir():
                workspace.artifacts.put_dir(record.path, target)
            else:
                workspace.artifacts.put_file(record.path, target)
            shutil.rmtree(staging, ignore_errors=True)
        return cls._from_record(workspace, record)

    @classmethod
    def _register_from_run(
        cls,
        run: Run,
        name: str,
        model_path: str,
        tags: Any,
        properties: Any,
        description: str | None,
        framework: str | None = None,
    ) -> Model:
        _check_name(name)
        artifacts = run.workspace.artifacts
        stored = (
            artifacts.fetch(run._artifact(model_path))
            if artifacts.exists(run._artifact(model_path))
            else (artifacts.local_path(run._artifact(model_path)))
        )
        if not stored.exists():
            raise InvalidInputError(
                f"run.register_model: run {run.id} has no file or folder {model_path!r}. "
                "model_path is a path inside the run (e.g. 'outputs/model.pkl'); see run.get_file_names()."
            )
        return cls._store_version(
            run.workspace, stored, name, tags, properties, description, framework, run_id=run.id
        )

    @classmethod
    def list(
        cls,
        workspace: Workspace,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        latest: bool = False,
        dataset_id: str | None = None,
        expand: bool = True,
        page_count: int = 255,
        model_framework: str | None = None,
    ) -> list[Model]:
        """Models, newest first. v1's filters: tags as ['key'] or [['key', 'value']], properties the same,
        run_id, model_framework. `expand` and `page_count` change nothing: every model comes back whole."""
        if dataset_id is not None:
            return []  # models do not list datasets (the producing run's lineage does)
        models = [
            cls._from_record(workspace, r) for r in workspace.store.list_models(name=name, latest=latest)
        ]
        if run_id is not None:
            models = [m for m in models if m.run_id == run_id]
        if model_framework is not None:
            models = [m for m in models if m.model_framework == model_framework]
        for attr, wanted in (("tags", tags), ("properties", properties)):
            if wanted:
                models = [
                    m for m in models if all(_pair_matches(getattr(m, attr), w) for w in _pairs(wanted))
                ]
        return models

    def download(self, target_dir: str = ".", exist_ok: bool = False, exists_ok: bool | None = None) -> str:
        dest = Path(target_dir) / Path(self._path).name
        if dest.exists() and not (exist_ok or exists_ok):
            raise InvalidInputError(f"{dest} already exists; pass exist_ok=True to overwrite it.")
        self.workspace.artifacts.copy_tree_local(self._path, dest)
        return str(dest)

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Workspace | None = None
    ) -> str:
        """Local path of a registered model. Inside a submitted run the run's workspace is used; outside,
        `_workspace` or the nearest workspace; with none, ./azureml-models/<name>/<version>/ as Azure ML does."""
        from runyard.core.context import workspace_of_current_run
        from runyard.core.workspace import Workspace
        from runyard.errors import WorkspaceNotFound

        _check_version(version, "get_model_path")
        in_job = workspace_of_current_run()
        workspace = in_job or _workspace
        if workspace is None:
            try:
                workspace = Workspace.from_config()
            except WorkspaceNotFound:
                return _local_model_cache(model_name, version)
        record = workspace.store.get_model(model_name, version)
        stored = workspace.artifacts.fetch(record.path)
        if in_job is None:
            return str(stored)
        # Inside a job, hand out a copy in the job's azureml-models/ cache (as v1 does), so a script that
        # writes to "its" model cannot change the registered version.
        local = (
            Path(os.environ.get("AML_APP_ROOT", ".")) / "azureml-models" / record.name / str(record.version)
        )
        target = local / stored.name
        if not target.exists():
            staging = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}")
            if stored.is_dir():
                shutil.copytree(stored, staging / stored.name)
            else:
                staging.mkdir(parents=True)
                shutil.copy2(stored, staging / stored.name)
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging, local)
            except OSError:  # another process of the job got there first
                shutil.rmtree(staging, ignore_errors=True)
        return str(target.resolve())

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version={self.version})"


def _pairs(wanted: Any) -> list[Any]:
    """v1's filter forms: 'key', ['key', ...], [['key', 'value'], ...] or {'key': 'value'}."""
    if isinstance(wanted, str):
        return [wanted]
    if isinstance(wanted, dict):
        return [[k, v] for k, v in wanted.items()]
    return list(wanted)


def _pair_matches(values: dict[str, Any], item: Any) -> bool:
    if isinstance(item, (list, tuple)):
        if len(item) == 1:
            return item[0] in values
        return item[0] in values and str(values[item[0]]) == str(item[1])
    return item in values


def _local_model_cache(name: str, version: int | None) -> str:
    root = Path(os.environ.get("AML_APP_ROOT", ".")) / "azureml-models" / name
    versions = (
        sorted((int(p.name) for p in root.glob("*") if p.name.isdigit()), reverse=True)
        if root.is_dir()
        else []
    )
    chosen = version if version is not None else (versions[0] if versions else None)
    if chosen is not None and (root / str(chosen)).is_dir():
        entries = list((root / str(chosen)).iterdir())
        if len(entries) == 1:
            return str(entries[0])
    if version is None and Path(name).exists():
        return str(Path(name).resolve())
    raise ModelNotFound(name, version, f"the local cache {root} (no workspace found)")
