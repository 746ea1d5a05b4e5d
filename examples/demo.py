"""`make demo`: submit a real training script to a fresh local workspace, watch it, read it back."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from runyard import Experiment, Model, ScriptRunConfig, Workspace

HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parent / "demo-workspace"
console = Console(highlight=False, soft_wrap=True)


def main() -> None:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    ws = Workspace.create(WORKSPACE)
    console.rule("[bold]runyard demo")
    console.print(f"Workspace: {ws.path}  (SQLite database + artifact folder; nothing else to start)\n")

    experiment = Experiment(ws, "demo-train")
    config = ScriptRunConfig(
        source_directory=HERE / "train", script="train.py", arguments=["--epochs", "40", "--lr", "0.5"]
    )
    run = experiment.submit(config)
    console.print(f"Submitted run [bold]{run.id}[/] — status {run.get_status()}. Streaming its driver log:\n")
    run.wait_for_completion(show_output=True)

    metrics = run.get_metrics()
    table = Table(title="What the script logged (run.get_metrics())", title_justify="left")
    for column in ("metric", "value"):
        table.add_column(column)
    for name, value in metrics.items():
        shown = f"{len(value)} values, last {value[-1]:.4f}" if isinstance(value, list) else str(value)
        table.add_row(name, shown)
    console.print(table)

    model = run.register_model("demo-logreg", "outputs/model.npz", tags={"accuracy": metrics["accuracy"][-1]})
    console.print(
        f"\nRegistered model [bold]{model.name}[/] version {model.version} from the run's outputs/."
    )
    console.print(
        f"Model.get_model_path('demo-logreg') → {Model.get_model_path('demo-logreg', _workspace=ws)}\n"
    )

    console.print("Files kept with the run:")
    for name in run.get_file_names():
        console.print(f"  {name}")

    w = f"--workspace {WORKSPACE.relative_to(Path.cwd()) if WORKSPACE.is_relative_to(Path.cwd()) else WORKSPACE}"
    console.rule("[bold]Read it back from the command line")
    for command, what in [
        (f"runyard {w} runs list", "every run, newest first"),
        (f"runyard {w} runs show {run.id}", "status, times, tags, metric summary, files"),
        (f"runyard {w} metrics {run.id}", "metrics as logged"),
        (f"runyard {w} logs {run.id}", "the script's stdout/stderr (azureml-logs/70_driver_log.txt)"),
        (f"runyard {w} models list", "registered models"),
    ]:
        console.print(f"  [cyan].venv/bin/{command}[/]\n      {what}")
    console.print(
        "\nSubmit your own script: [cyan].venv/bin/runyard submit path/to/train.py -- --your-args[/]"
    )


if __name__ == "__main__":
    sys.exit(main())
