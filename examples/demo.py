"""`make demo`: a three-step ML pipeline in a fresh local workspace — run, resubmit (all reused),
change a parameter (only what depends on it reruns, and it says why), then read it all back; then a
batch-scoring ParallelRunStep scores a folder of digit images with a model from the model registry."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from runyard import Model, Workspace
from runyard.data import Dataset
from runyard.environments import CondaDependencies, Environment
from runyard.parallel import ParallelRunConfig, ParallelRunStep
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
)

HERE = Path(__file__).resolve().parent
STEPS = HERE / "pipeline"
WORKSPACE = HERE.parent / "demo-workspace"
SCORED_IMAGES = 200
console = Console(highlight=False, soft_wrap=True)
sys.path.insert(0, str(STEPS))
import digits  # noqa: E402  (examples/pipeline/digits.py: the scoring demo's images and model)


def demo_environment() -> Environment:
    """The steps' environment: a virtual environment built once (with uv) and reused by every run.
    azureml-defaults is provided by runyard itself, and numpy/pandas come with runyard's own layer; Pillow
    (the scoring step reads PNG files) comes from uv's cache, or from the package index the first time on a
    machine. A real project lists its packages here (pip_packages=["scikit-learn==1.5.2", ...])."""
    env = Environment("demo-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["azureml-defaults", "pillow"])
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


def scoring_pipeline(ws: Workspace, images) -> Pipeline:  # type: ignore[no-untyped-def]
    """One ParallelRunStep: two worker processes share the images in mini-batches of 25 files; every
    returned line goes to one output file (append_row)."""
    config = ParallelRunConfig(
        environment=demo_environment(),
        entry_script="score.py",
        error_threshold=0,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size="25",
        source_directory=str(STEPS / "score"),
        append_row_file_name="digit_predictions.txt",
    )
    step = ParallelRunStep(
        name="score-digits",
        parallel_run_config=config,
        inputs=[images.as_named_input("digits")],
        output=OutputFileDatasetConfig("predictions"),
        arguments=["--model_name", "digits"],
    )
    return Pipeline(ws, [step], description="demo: batch scoring with a ParallelRunStep")


def batch_scoring(ws: Workspace):  # type: ignore[no-untyped-def]
    """Train a digit classifier here, register it, register a folder of digit PNGs as a FileDataset,
    score them with a ParallelRunStep, and check the predictions against the true digits."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images, labels = digits.draw_digits(2000, seed=1)
        weights = digits.train(images, labels)
        np.savez(folder / "digits.npz", **weights)
        scored, truth = digits.draw_digits(SCORED_IMAGES, seed=2)
        model = Model.register(
            ws,
            folder / "digits.npz",
            "digits",
            tags={"test_accuracy": round(digits.accuracy(weights, scored, truth), 3)},
            description="softmax regression on 28x28 digit images (examples/pipeline/digits.py)",
        )
        digits.write_pngs(scored, folder / "images")
        uploaded = Dataset.File.upload_directory(
            str(folder / "images"), (ws.get_default_datastore(), "digits"), show_progress=False
        )
    dataset = uploaded.register(ws, "digit-images")
    console.print(
        f"  registered model 'digits' version {model.version} and dataset 'digit-images' "
        f"({len(dataset.to_path())} PNG files of drawn digits)\n"
    )
    run = scoring_pipeline(ws, dataset).submit("demo-scoring", show_output=False)
    run.wait_for_completion(show_output=True)
    step = run.find_step_run("score-digits")[0]
    output = Path(step.get_output_data("predictions").local_path) / "digit_predictions.txt"
    predicted = {
        name: int(digit) for name, digit, _p in (line.split() for line in output.read_text().splitlines())
    }
    correct = sum(predicted.get(f"digit-{i:04d}.png") == label for i, label in enumerate(truth))
    console.print(
        f"\n  {len(predicted)} predictions (file, digit, probability), {correct} of {len(truth)} right: {output}"
    )
    logs = ws.artifacts.local_path(f"runs/{step.id}/logs")
    console.print(
        f"  the job's logs: {logs}\n    job_result.txt, job_progress_overview.*.txt, "
        "sys/job_report/processed_mini-batches.csv, user/entry_script_log/0/process00N.log.txt"
    )
    return step


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

    console.print(
        "\n[bold]4. Batch scoring[/] — a ParallelRunStep scores a folder of images with a registered model:"
    )
    scoring = batch_scoring(ws)

    w = "--workspace demo-workspace"
    console.rule("[bold]Look around")
    for command, what in [
        (f"runyard {w} pipeline list", "pipeline runs with steps done / reused"),
        (f"runyard {w} pipeline show {third.id}", "steps, reuse, outputs (path, size, files)"),
        (f"runyard {w} pipeline why {third.id}", "why each step ran or was reused"),
        (f"runyard {w} pipeline graph {third.id}", "the steps and the data between them"),
        (f"runyard {w} logs {train.id}", "the train step's driver log (70_driver_log.txt)"),
        (f"runyard {w} metrics {train.id}", "the train step's metrics"),
        (f"runyard {w} logs {scoring.id}", "the scoring step's driver log: mini-batches, workers, outcome"),
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
