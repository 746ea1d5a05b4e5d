"""`make demo`: a three-step ML pipeline in a fresh local workspace — run, resubmit (all reused),
change a parameter (only what depends on it reruns, and it says why), then read it all back."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from runyard import Workspace
from runyard.data import Dataset
from runyard.environments import CondaDependencies, Environment
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
)

HERE = Path(__file__).resolve().parent
STEPS = HERE / "pipeline"
WORKSPACE = HERE.parent / "demo-workspace"
console = Console(highlight=False, soft_wrap=True)


def demo_environment() -> Environment:
    """The steps' environment: a virtual environment built once (with uv) and reused by every run.
    azureml-defaults is provided by runyard itself, and numpy/pandas come with runyard's own layer, so this
    builds offline; a real project lists its packages here (pip_packages=["scikit-learn==1.5.2", ...])."""
    env = Environment("demo-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["azureml-defaults"])
    return env


def build(ws: Workspace) -> Pipeline:
    # prepare writes CSV; read as a table, registered as "demo-samples" when prepare completes
    samples = OutputFileDatasetConfig("samples").read_delimited_files().register_on_complete("demo-samples")
    model = OutputFileDatasetConfig("model").as_upload()  # published only if training succeeds
    report = OutputFileDatasetConfig("report")
    learning_rate = PipelineParameter("learning_rate", 0.5)
    env = demo_environment()
    prepare = PythonScriptStep(
        "prepare.py",
        name="prepare",
        source_directory=STEPS / "prepare",
        environment=env,
        arguments=["--output", samples],
    )
    train = PythonScriptStep(
        "train.py",
        name="train",
        source_directory=STEPS / "train",
        environment=env,
        arguments=["--data", samples.as_input("samples"), "--lr", learning_rate, "--model", model],
    )
    evaluate = PythonScriptStep(
        "evaluate.py",
        name="evaluate",
        source_directory=STEPS / "evaluate",
        environment=env,
        arguments=[
            "--data",
            samples.as_input("samples"),
            "--model",
            model.as_input("model"),
            "--report",
            report,
        ],
    )
    return Pipeline(ws, [prepare, train, evaluate], description="demo: prepare → train → evaluate")


def summary(run) -> None:  # type: ignore[no-untyped-def]
    for item in run.get_reuse_report():
        if item["reused"]:
            console.print(f"  [green]{item['step']:<9}[/] reused  {item['reusedFrom']}")
        else:
            console.print(f"  [yellow]{item['step']:<9}[/] ran     because {item['reason']}")


def main() -> None:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    ws = Workspace.create(WORKSPACE)
    console.rule("[bold]runyard demo: a pipeline on your machine")
    console.print(f"Workspace {ws.path}: a SQLite file and a folder. No server, no cloud.\n")

    pipeline = build(ws)
    console.print("[bold]1. First run[/] — every step runs as its own process; lines are prefixed by step:\n")
    started = time.perf_counter()
    first = pipeline.submit("demo", show_output=False)
    first.wait_for_completion(show_output=True)
    console.print(
        f"\nTook {time.perf_counter() - started:.1f} s. Test accuracy: "
        f"{first.find_step_run('evaluate')[0].get_metrics()['test_accuracy']:.3f}\n"
    )

    prep = first.find_step_run("prepare")[0].get_details_with_logs()["logFiles"][
        "azureml-logs/65_job_prep.txt"
    ]
    built = [line.split(" ", 1)[1] for line in prep.splitlines() if "Environment 'demo-env' (" in line]
    if built:
        console.print(f"The steps run in e{built[0][1:]}\n")

    console.print("[bold]2. Resubmit unchanged[/] — nothing changed, so every step is reused:")
    started = time.perf_counter()
    second = build(ws).submit("demo", show_output=False)
    second.wait_for_completion(show_output=False)
    console.print(f"  done in {time.perf_counter() - started:.2f} s")
    summary(second)

    console.print(
        "\n[bold]3. Change one parameter[/] (learning_rate 0.5 → 0.1) — prepare is reused, the rest says why it ran:"
    )
    third = build(ws).submit("demo", pipeline_parameters={"learning_rate": 0.1}, show_output=False)
    third.wait_for_completion(show_output=False)
    summary(third)
    before = first.find_step_run("train")[0].get_metrics()["loss"][-1]
    after = third.find_step_run("train")[0].get_metrics()["loss"][-1]
    accuracy = third.find_step_run("evaluate")[0].get_metrics()["test_accuracy"]
    console.print(
        f"  final training loss {after:.4f} (was {before:.4f} with 0.5); test accuracy {accuracy:.3f}"
    )

    registered = Dataset.get_by_name(ws, "demo-samples")
    rows = registered.to_pandas_dataframe()
    console.print(
        f"\nprepare registered dataset 'demo-samples' version {registered.version}: {len(rows)} rows, "
        f"columns {list(rows.columns)}, {len(registered.to_path())} file(s), recorded with their content hashes"
    )

    train = third.find_step_run("train")[0]
    model_dir = train.get_output_data("model").local_path
    console.print(
        f"\nThe train step logged {len(train.get_metrics()['loss'])} loss values; its model is in {model_dir}"
    )

    w = "--workspace demo-workspace"
    console.rule("[bold]Look around")
    for command, what in [
        (f"runyard {w} pipeline list", "pipeline runs with steps done / reused"),
        (f"runyard {w} pipeline show {third.id}", "steps, reuse, outputs (path, size, files)"),
        (f"runyard {w} pipeline why {third.id}", "why each step ran or was reused"),
        (f"runyard {w} pipeline graph {third.id}", "the steps and the data between them"),
        (f"runyard {w} logs {train.id}", "the train step's driver log (70_driver_log.txt)"),
        (f"runyard {w} metrics {train.id}", "the train step's metrics"),
        (f"runyard {w} env list --builds", "environments built on this machine, one per content hash"),
        (
            f"runyard {w} pipeline rerun {third.id} --set learning_rate=0.3",
            "rerun from the snapshot, new value",
        ),
        (f"runyard {w} up", f"the studio in your browser: {third.get_portal_url()}"),
    ]:
        console.print(f"  [cyan].venv/bin/{command}[/]\n      {what}")


if __name__ == "__main__":
    main()
