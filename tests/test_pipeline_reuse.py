"""Step reuse: which steps rerun after a change, and the reason recorded for each one that did.

The pipeline is prep → train → evaluate, each step with its own source folder. prep's output does
not depend on anything but prep.py; train's output carries its VERSION and --lr, so a change to
either reaches evaluate through the content hash of train's output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
)

pytestmark = pytest.mark.usefixtures("no_stray_processes")

PREP = """
    import sys, pathlib
    out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
    (out / "data.txt").write_text("1 2 3")
    print("prep ran")
"""
TRAIN = """
    import sys, pathlib
    VERSION = 1
    data = pathlib.Path(sys.argv[sys.argv.index("--data") + 1])
    model = pathlib.Path(sys.argv[sys.argv.index("--model") + 1])
    lr = sys.argv[sys.argv.index("--lr") + 1]
    (model / "model.txt").write_text(f"v{VERSION} lr={lr} data={(data / 'data.txt').read_text()}")
    print("train ran")
"""
EVALUATE = """
    import sys, pathlib
    model = pathlib.Path(sys.argv[1])
    print("evaluate ran:", (model / "model.txt").read_text())
"""


class Project:
    """Three source folders on disk, and a fresh Pipeline built from them on each call."""

    def __init__(self, ws: Workspace, root: Path) -> None:
        self.ws = ws
        self.dirs = {
            "prep": SourceDir(root / "prep").gen({"prep.py": PREP}),
            "train": SourceDir(root / "train").gen({"train.py": TRAIN, "helpers.py": "X = 1\n"}),
            "evaluate": SourceDir(root / "evaluate").gen({"evaluate.py": EVALUATE}),
        }

    def pipeline(self, train_allow_reuse: bool = True, environment: object = None) -> Pipeline:
        prepared = PipelineData("prepared")
        model = OutputFileDatasetConfig("model")
        lr = PipelineParameter("lr", 0.1)
        prep = PythonScriptStep(
            "prep.py",
            name="prep",
            arguments=["--out", prepared],
            outputs=[prepared],
            source_directory=self.dirs["prep"],
        )
        train = PythonScriptStep(
            "train.py",
            name="train",
            arguments=["--data", prepared, "--lr", lr, "--model", model],
            inputs=[prepared],
            source_directory=self.dirs["train"],
            allow_reuse=train_allow_reuse,
            environment=environment,
        )
        evaluate = PythonScriptStep(
            "evaluate.py",
            name="evaluate",
            arguments=[model.as_input()],
            source_directory=self.dirs["evaluate"],
        )
        return Pipeline(self.ws, [prep, train, evaluate])

    def run(self, **submit: object) -> PipelineRun:
        options = {k: submit.pop(k) for k in ("train_allow_reuse", "environment") if k in submit}
        run = self.pipeline(**options).submit("reuse", show_output=False, **submit)  # type: ignore[arg-type]
        assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
        return run

    def edit(self, step: str, name: str, text: str) -> None:
        self.dirs[step].gen({name: text})


def report(run: PipelineRun) -> dict[str, dict[str, object]]:
    return {item["step"]: item for item in run.get_reuse_report()}


def reran(run: PipelineRun) -> dict[str, str]:
    """Steps that ran a process in this pipeline run → the recorded reason."""
    return {name: str(item["reason"]) for name, item in report(run).items() if not item["reused"]}


def step_ids(run: PipelineRun) -> dict[str, str]:
    return {s.name or "": s.id for s in run.get_steps()}


@pytest.fixture
def project(workspace: Workspace, tmp_path: Path) -> Project:
    return Project(workspace, tmp_path / "project")


def test_first_run_says_no_earlier_run_and_an_unchanged_resubmit_reuses_everything(project: Project) -> None:
    first = project.run()
    assert reran(first) == {
        "prep": "no earlier run of step 'prep'",
        "train": "no earlier run of step 'train'",
        "evaluate": "no earlier run of step 'evaluate'",
    }
    second = project.run()
    assert reran(second) == {}
    ids = step_ids(first)
    for name, item in report(second).items():
        assert item["reusedFrom"] == ids[name]
        assert item["reason"] == f"reused run {ids[name]}: nothing it depends on changed"
    train = second.find_step_run("train")[0]
    assert train.get_status() == "Finished"  # a reused step appears Completed ...
    assert train._is_reused and train._reused_run_id == ids["train"]  # ... with a link to the run it reused
    assert train.get_job_log() == ""  # no process ran for it
    original = first.find_step_run("train")[0]
    assert train.get_output_data("model").local_path == original.get_output_data("model").local_path
    # a third run reuses the original runs, not the reused records that point at them
    third = project.run()
    assert {name: item["reusedFrom"] for name, item in report(third).items()} == ids


def test_editing_one_script_reruns_that_step_and_what_reads_its_changed_output(project: Project) -> None:
    first = project.run()
    project.edit("train", "train.py", TRAIN.replace("VERSION = 1", "VERSION = 2"))
    second = project.run()
    assert reran(second) == {
        "train": "file train.py changed",
        "evaluate": "input from step 'train' changed",
    }
    assert report(second)["prep"]["reusedFrom"] == step_ids(first)["prep"]
    assert report(second)["train"]["changed"] == ["source:train.py"]
    assert report(second)["evaluate"]["changed"] == ["input:model"]
    assert "v2 lr=0.1" in second.find_step_run("evaluate")[0].get_job_log()
    decision = second.find_step_run("train")[0].get_reuse_decision()
    assert decision["reused"] is False and decision["details"] == ["file train.py changed"]


def test_a_change_to_several_files_names_the_first_and_counts_the_others(project: Project) -> None:
    project.run()
    project.edit("train", "train.py", TRAIN.replace("VERSION = 1", "VERSION = 3"))
    project.edit("train", "helpers.py", "X = 2\n")
    project.edit("train", "notes.md", "new file\n")
    second = project.run()
    assert reran(second)["train"] == "file helpers.py changed (and 2 other files)"
    assert report(second)["train"]["details"] == [
        "file helpers.py changed",
        "file notes.md added",
        "file train.py changed",
    ]


def test_an_upstream_edit_that_leaves_its_output_identical_keeps_downstream_reused(project: Project) -> None:
    first = project.run()
    project.edit("prep", "prep.py", PREP + "    # a comment: the file changes, the data it writes does not\n")
    second = project.run()
    assert reran(second) == {"prep": "file prep.py changed"}
    ids = step_ids(first)
    assert report(second)["train"]["reusedFrom"] == ids["train"]
    assert report(second)["evaluate"]["reusedFrom"] == ids["evaluate"]


def test_a_new_parameter_value_reruns_with_the_argument_named(project: Project) -> None:
    project.run()
    second = project.run(pipeline_parameters={"lr": 0.2})
    assert reran(second) == {
        "train": "argument --lr changed from 0.1 to 0.2",
        "evaluate": "input from step 'train' changed",
    }
    assert report(second)["train"]["changed"] == ["arg:--lr"]
    # back to the default: the first run's train is reused again
    third = project.run(pipeline_parameters={"lr": 0.1})
    assert reran(third) == {}


def test_allow_reuse_false_always_reruns_that_step(project: Project) -> None:
    first = project.run(train_allow_reuse=False)
    second = project.run(train_allow_reuse=False)
    assert reran(second) == {"train": "allow_reuse=False on this step"}
    # train wrote the same bytes again, so evaluate's input did not change
    assert report(second)["evaluate"]["reusedFrom"] == step_ids(first)["evaluate"]


def test_regenerate_outputs_reruns_every_step(project: Project) -> None:
    project.run()
    second = project.run(regenerate_outputs=True)
    assert reran(second) == {
        name: "regenerate_outputs=True was passed at submit" for name in ("prep", "train", "evaluate")
    }


def test_a_regenerated_run_is_not_offered_for_reuse_later(project: Project) -> None:
    first = project.run()
    project.run(regenerate_outputs=True)
    third = project.run()
    assert reran(third) == {}
    assert {i["step"]: i["reusedFrom"] for i in third.get_reuse_report()} == step_ids(first)


def test_steps_that_differ_only_by_name_do_not_reuse_each_other(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    folder = SourceDir(tmp_path / "same").gen({"noop.py": "print('ran')\n"})
    first = PythonScriptStep("noop.py", name="first", source_directory=folder)
    second = PythonScriptStep("noop.py", name="second", source_directory=folder)
    second.run_after(first)
    with pytest.warns(UserWarning, match="share source_directory"):
        run = Pipeline(sqlite_workspace, [first, second]).submit("names", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert reran(run) == {
        "first": "no earlier run of step 'first'",
        "second": "no earlier run of step 'second'",
    }


def test_a_step_whose_earlier_outputs_were_deleted_is_not_reused(project: Project) -> None:
    first = project.run()
    prepared = Path(first.find_step_run("prep")[0].get_output_data("prepared").local_path)
    shutil.rmtree(prepared)
    second = project.run()
    folder_gone = f"the folder {prepared} of output 'prepared' of run {step_ids(first)['prep']} is missing"
    assert reran(second) == {"prep": folder_gone}
    assert report(second)["prep"]["changed"] == ["outputs-missing"]
    new_prepared = second.find_step_run("prep")[0].get_output_data("prepared").local_path
    assert Path(new_prepared) != prepared and (Path(new_prepared) / "data.txt").read_text() == "1 2 3"
    assert report(second)["train"]["reusedFrom"] == step_ids(first)["train"]  # same bytes, same input hash


def test_a_change_to_an_amlignored_file_is_still_reused(project: Project) -> None:
    project.edit("prep", ".amlignore", "scratch/\n*.log\n")
    project.edit("prep", "run.log", "first\n")
    first = project.run()
    project.edit("prep", "run.log", "second, much longer\n")
    (project.dirs["prep"].path / "scratch").mkdir()
    project.edit("prep", "scratch/tmp.txt", "ignored\n")
    second = project.run()
    assert reran(second) == {}
    assert report(second)["prep"]["reusedFrom"] == step_ids(first)["prep"]
    project.edit("prep", "config.json", "{}\n")  # not ignored
    third = project.run()
    assert reran(third) == {"prep": "file config.json added"}


def test_runyardignore_takes_precedence_over_gitignore(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    project = Project(sqlite_workspace, tmp_path / "project")
    project.edit("train", ".gitignore", "data.csv\n")  # would hide data.csv ...
    project.edit("train", ".runyardignore", "*.tmp\n")  # ... but the first ignore file found wins
    project.edit("train", "data.csv", "a,b\n")
    project.run()
    project.edit("train", "cache.tmp", "ignored\n")
    assert reran(project.run()) == {}
    project.edit("train", "data.csv", "a,b\n1,2\n")
    second = project.run()
    assert reran(second) == {"train": "file data.csv changed"}


def user_managed(name: str, **variables: str) -> dict[str, object]:
    """v1's environment JSON for an environment that runs the current interpreter as it is (nothing built)."""
    return {
        "name": name,
        "version": None,
        "environmentVariables": variables,
        "python": {"userManagedDependencies": True, "interpreterPath": "python", "condaDependencies": None},
    }


def test_a_changed_environment_reruns_the_step_and_a_renamed_one_does_not(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """The environment's content counts, not its name (v1: an environment's identity is its hash)."""
    project = Project(sqlite_workspace, tmp_path / "project")
    project.run(environment=user_managed("env-a", MODE="a"))
    second = project.run(environment=user_managed("env-a", MODE="b"))
    assert reran(second) == {"train": "environment 'env-a' changed: environment variables changed"}
    assert report(second)["train"]["changed"] == ["environment"]
    assert reran(project.run(environment=user_managed("env-renamed", MODE="b"))) == {}


def test_steps_sharing_a_folder_all_rerun_on_any_change_in_it(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """What the shared-source_directory warning warns about."""
    shared = SourceDir(tmp_path / "shared").gen({"a.py": "print('a')\n", "b.py": "print('b')\n"})

    def submit() -> PipelineRun:
        a = PythonScriptStep("a.py", name="a", source_directory=shared)
        b = PythonScriptStep("b.py", name="b", source_directory=shared)
        with pytest.warns(UserWarning, match="'a', 'b' share source_directory"):
            run = Pipeline(sqlite_workspace, [a, b]).submit("shared", show_output=False)
        assert run.wait_for_completion(show_output=False) == "Finished"
        return run

    submit()
    shared.gen({"a.py": "print('a, edited')\n"})
    second = submit()
    assert reran(second) == {"a": "file a.py changed", "b": "file a.py changed"}


def test_the_decision_is_stored_with_the_step_run_for_pipeline_why(project: Project) -> None:
    project.run()
    project.edit("train", "train.py", TRAIN.replace("VERSION = 1", "VERSION = 4"))
    second = project.run(pipeline_parameters={"lr": 0.3})
    train = second.find_step_run("train")[0]
    data = train._record.data
    assert data["reuse"]["reason"] == "file train.py changed; argument --lr changed from 0.1 to 0.3"
    assert data["reuse"]["changed"] == ["source:train.py", "arg:--lr"]
    assert len(train._record.fingerprint or "") == 64
    assert data["material"]["arguments"][3] == "0.3"
