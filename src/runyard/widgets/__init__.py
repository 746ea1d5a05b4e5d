"""The RunDetails widget: a run's status, metrics, steps and log in a notebook, live while it runs.

`RunDetails(run).show()` draws an anywidget in Jupyter (JupyterLab, Notebook 7, VS Code) and prints a
text summary anywhere else. See docs/widgets.md.
"""

from runyard.widgets.run_details import ParallelRunStepDetails, RunDetails

__all__ = ["ParallelRunStepDetails", "RunDetails"]
