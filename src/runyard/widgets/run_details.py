"""RunDetails and ParallelRunStepDetails, with v1's names: show a run in a notebook, live while it runs.

In a Jupyter kernel with anywidget installed, show() displays the widget (view.py) and returns at once; a
daemon thread polls the store about once a second, asks only for a change marker (statuses, metric row
count, log size), rebuilds the snapshot when it moved, and stops after the run has ended (one final
update). The kernel is never blocked, so the next cell runs while the run does.

Anywhere else (a script, a terminal, a kernel without anywidget) show() prints a one-screen summary, so
v1 scripts that call it keep running.
"""

from __future__ import annotations

import contextlib
import html
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_keywords
from runyard.errors import InvalidInputError, NotFoundError
from runyard.status import TERMINAL_STATUSES
from runyard.widgets import snapshot
from runyard.widgets.text import summary

if TYPE_CHECKING:
    from runyard.core.run import Run
    from runyard.core.workspace import Workspace

#: Seconds between two looks at the store while the run is active.
REFRESH_SECONDS = 1.0
INSTALL_HINT = (
    "For the live widget in this notebook: pip install runyard[widgets] (anywidget), then restart the kernel."
)


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (ipykernel's shell, also used by VS Code and Colab)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


class _Poller(threading.Thread):
    """Keeps one widget's snapshot current while its run is active, then stops."""

    def __init__(self, details: RunDetails, interval: float) -> None:
        super().__init__(name=f"runyard-widget-{details.run_instance.id}", daemon=True)
        self.details = details
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        errors = 0
        while not self.stopped.wait(self.interval):
            view = self.details.widget
            if view is None or getattr(view, "comm", None) is None:  # closed: nobody is looking
                return
            try:
                ended = self.details._refresh()
                errors = 0
            except Exception:  # a store hiccup must not kill the widget; give up after a few in a row
                errors += 1
                if errors >= 5:
                    return
                continue
            if ended:
                self.stopped.wait(self.interval)  # the job's last log lines and metric rows land just after
                with contextlib.suppress(Exception):
                    self.details._refresh()
                return


@v1_keywords
class RunDetails:
    """v1's `azureml.widgets.RunDetails`: `RunDetails(run).show()` for script, interactive, pipeline and
    step runs (a ParallelRunStep step shows its progress)."""

    def __init__(self, run_instance: Run) -> None:
        self.run_instance = run_instance
        #: The anywidget once show() displayed one (None outside a notebook).
        self.widget: Any = None
        self.settings: dict[str, Any] = {}
        self._marker: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._poller: _Poller | None = None

    def get_widget_data(self, widget_settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything the widget shows, as a dict with v1's top-level keys (see widgets/snapshot.py)."""
        selected = self.widget.selected if self.widget is not None else None
        return snapshot.collect(self.run_instance, selected or None, widget_settings or self.settings)

    def show(
        self, render_lib: Callable[[str], Any] | None = None, widget_settings: dict[str, Any] | None = None
    ) -> None:
        """Display the widget in a notebook and return at once; elsewhere print the text summary.

        `render_lib` (v1: Databricks' displayHTML) receives the summary as HTML instead of a widget.
        `widget_settings` is kept and returned by get_widget_data()."""
        self.settings = dict(widget_settings or {})
        if render_lib is not None:
            render_lib(f"<pre>{html.escape(summary(self.get_widget_data()))}</pre>")
            return
        if not in_jupyter_kernel():
            print(summary(self.get_widget_data()))
            return
        try:
            from runyard.widgets.view import RunDetailsView  # the optional dependency: runyard[widgets]
        except ImportError:
            print(summary(self.get_widget_data(), hint=INSTALL_HINT))
            return
        from IPython.display import display

        self.widget = RunDetailsView()
        self.widget.observe(self._on_select, names="selected")
        ended = self._refresh()
        display(self.widget)
        if not ended:
            self._poller = _Poller(self, REFRESH_SECONDS)
            self._poller.start()

    def _refresh(self, force: bool = False) -> bool:
        """Send a new snapshot when the change marker moved; True once the run has ended."""
        with self._lock:
            selected = self.widget.selected or None
            marker = snapshot.change_marker(self.run_instance, selected)
            if force or marker != self._marker:
                data = snapshot.collect(self.run_instance, selected, self.settings)
                self.widget.snapshot = data
                self._marker = marker
            return marker[0] in TERMINAL_STATUSES

    def _on_select(self, change: dict[str, Any]) -> None:
        self._refresh(force=True)  # the kernel's own thread, between cells: a click is answered at once


def _step_of(run: Run, step_name: str) -> Run:
    found = [c for c in run.get_children() if c.name == step_name]
    if not found:
        names = sorted(c.name or c.id for c in run.get_children())
        raise NotFoundError(
            f"Run {run.id} has no step named {step_name!r}; its steps are {names}. Pass one of these as step_name."
        )
    return found[0]


@v1_keywords
class ParallelRunStepDetails:
    """v1's `azureml.widgets.ParallelRunStepDetails`: a ParallelRunStep step's progress (mini-batches done,
    failed, speed, ETA) and log. Name the step as v1 does, the first combination given wins:
    run_instance + step_name, workspace + run_id + step_name, or workspace + step_run_id."""

    def __init__(
        self,
        run_instance: Run | None = None,
        step_name: str | None = None,
        workspace: Workspace | None = None,
        run_id: str | None = None,
        step_run_id: str | None = None,
    ) -> None:
        from runyard.core.run import Run

        if run_instance is not None and step_name:
            self.step_run = _step_of(run_instance, step_name)
        elif workspace is not None and run_id and step_name:
            self.step_run = _step_of(Run.get(workspace, run_id), step_name)
        elif workspace is not None and step_run_id:
            self.step_run = Run.get(workspace, step_run_id)
        else:
            raise InvalidInputError(
                "ParallelRunStepDetails needs one of: run_instance + step_name, workspace + run_id + "
                "step_name, or workspace + step_run_id."
            )
        self.details = RunDetails(self.step_run)

    def show(self) -> None:
        """The step's progress view: the widget in a notebook, a text summary elsewhere."""
        self.details.show()
