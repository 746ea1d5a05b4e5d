"""Run, Experiment and Model called the way v1 code calls them: properties, keywords, filters, schema metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, Model, Run, Workspace
from runyard.compat import V1ParameterIgnored
from runyard.errors import InvalidInputError, MetricValueError, ModelNotFound, RunEnvironmentException


def _run(ws: Workspace, name: str = "sig") -> Run:
    return Experiment(ws, name).start_logging(snapshot_directory=None, outputs=None)


def test_identity_is_read_only_properties(sqlite_workspace: Workspace) -> None:
    run = _run(sqlite_workspace)
    assert run.id == Run.get(sqlite_workspace, run.id).id
    assert run.experiment.name == "sig" and run.experiment.workspace is sqlite_workspace
    assert run.portal_url.endswith(f"/runs/{run.id}")
    with pytest.raises(AttributeError):
        run.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        run.experiment.name = "other"  # type: ignore[misc]
    run.complete()


def test_mistyped_keywords_are_type_errors_with_a_suggestion(sqlite_workspace: Workspace) -> None:
    exp = Experiment(sqlite_workspace, "sig")
    with pytest.raises(TypeError, match="Did you mean 'snapshot_directory'"):
        exp.start_logging(snapshot_dir=None)
    with pytest.raises(TypeError, match="unexpected keyword"):
        Experiment(sqlite_workspace, "sig", colour="red")
    run = exp.start_logging("named", None, None, None)  # v1's positional order: name, run_id, outputs, dir
    assert run.display_name == "named"
    with pytest.raises(TypeError, match="Did you mean 'model_framework'"):
        run.register_model("m", "x", model_frameworks="ScikitLearn")
    with pytest.raises(TypeError, match="Did you mean 'output_directory'"):
        run.download_files(output_dir="x")
    run.complete()


def test_schema_metrics_come_back_as_their_json(workspace: Workspace) -> None:
    run = _run(workspace)
    matrix = {"data": {"class_labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}}
    run.log_confusion_matrix("cm", matrix)
    run.log_residuals("res", '{"schema_type": "residuals", "data": {"bin_edges": [0, 1], "bin_counts": [2]}}')
    with pytest.raises(MetricValueError, match="data"):
        run.log_predictions("p", [1, 2])
    with pytest.raises(MetricValueError, match="finite"):
        run.log_accuracy_table("t", {"data": {"x": float("nan")}})
    metrics = run.get_metrics()
    assert metrics["cm"] == {"schema_type": "confusion_matrix", "schema_version": "1.0.0", **matrix}
    assert metrics["res"]["data"]["bin_counts"] == [2]
    run.complete()


def test_register_model_records_the_framework_and_warns_once_for_ignored_parameters(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    run = _run(sqlite_workspace)
    (tmp_path / "m.pkl").write_bytes(b"m")
    run.upload_file("outputs/m.pkl", str(tmp_path / "m.pkl"))
    with pytest.warns(V1ParameterIgnored, match="resource_configuration"):
        model = run.register_model(
            "clf",
            "outputs/m.pkl",
            model_framework=Model.Framework.SCIKITLEARN,
            resource_configuration=object(),
        )
    assert model.model_framework == "ScikitLearn" and model.run_id == run.id
    Model.register(sqlite_workspace, str(tmp_path / "m.pkl"), "clf", tags={"stage": "dev"})
    assert Model(sqlite_workspace, "clf").version == 2
    assert Model(sqlite_workspace, "clf", run_id=run.id).version == 1
    assert Model(sqlite_workspace, "clf", model_framework="ScikitLearn").version == 1
    assert [m.version for m in Model.list(sqlite_workspace, "clf", tags=[["stage", "dev"]])] == [2]
    assert Model.list(sqlite_workspace, "clf", tags=[["stage", "prod"]]) == []
    with pytest.raises(ModelNotFound):
        Model(sqlite_workspace, "clf", tags=["missing"])
    run.complete()


def test_experiment_list_and_environment_and_submitted_run(sqlite_workspace: Workspace) -> None:
    exp = Experiment(sqlite_workspace, "listed")
    assert [e.name for e in Experiment.list(sqlite_workspace, view_type="All")] == ["listed"]
    assert Experiment.list(sqlite_workspace, view_type="ArchivedOnly") == []
    assert exp.archived_time is None
    run = exp.start_logging(snapshot_directory=None, outputs=None)
    env = run.get_environment()  # an interactive run ran in the interpreter that started it
    assert env.name == "default-environment" and env.python.user_managed_dependencies is True
    assert run.get_detailed_status() == {"status": "Running", "details": None}
    with pytest.raises(RunEnvironmentException, match="outside a submitted run"):
        Run.get_submitted_run()
    run.complete()


def test_download_files_honours_timeout_seconds(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    run = _run(sqlite_workspace)
    for i in range(3):
        run.upload_file(f"f{i}.txt", __import__("io").BytesIO(b"x"))
    with pytest.raises(TimeoutError, match="timeout_seconds"):
        run.download_files(output_directory=str(tmp_path / "out"), timeout_seconds=-1)
    assert len(run.download_files(output_directory=str(tmp_path / "out"), timeout_seconds=60)) == 3
    run.complete()


def test_list_by_compute_and_clean(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    from runyard import ScriptRunConfig
    from runyard.core.compute_target import ComputeTarget

    source_dir.gen({"train.py": "print('ok')\n"})
    run = Experiment(sqlite_workspace, "bycompute").submit(ScriptRunConfig(source_dir, "train.py"))
    interactive = _run(sqlite_workspace)  # target 'local' too
    with pytest.raises(InvalidInputError, match="has not ended"):
        interactive.clean()
    interactive.complete()
    run.wait_for_completion()
    local = ComputeTarget(sqlite_workspace, "local")
    assert {r.id for r in Run.list_by_compute(local)} == {run.id, interactive.id}
    assert [r.id for r in Run.list_by_compute(local, type="azureml.scriptrun")] == [run.id]
    with pytest.raises(InvalidInputError, match="compute target object"):
        list(Run.list_by_compute("local"))
    (sqlite_workspace.work_dir / run.id).mkdir(parents=True)  # as RUNYARD_KEEP_WORK=1 leaves it
    run.clean()
    assert not (sqlite_workspace.work_dir / run.id).exists()
