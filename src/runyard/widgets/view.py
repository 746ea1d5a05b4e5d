"""The anywidget behind RunDetails.show(): three synced traits and an ES module, no build step.

Imported only when anywidget is installed (the `runyard[widgets]` extra); run_details.py falls back to
the text summary otherwise. The front-end (static/run_details.js) draws `snapshot` and writes `selected`
when a step or child is clicked. Charts use plotly.js from the installed `plotly` package, so nothing is
fetched from a CDN. plotly.min.js is 4.8 MB: it lives in ONE `PlotlySource` model per kernel session,
which every RunDetailsView references in its `plotly` trait (`IPY_MODEL_<id>`), so the comm carries it
once per kernel and a saved notebook's widget state holds it once, however many widgets it shows. The
front-end resolves the reference with the widget manager and evaluates plotly.js once per page.

The step graph uses the studio's colours: the studio stylesheet's custom properties and its graph and
badge rules are read from studio/static/studio.css at import and scoped to the widget's root element,
so a colour changed in the studio changes here too.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import plotly
import traitlets

from runyard.widgets.text import summary

STATIC = Path(__file__).parent / "static"
STUDIO_CSS = Path(__file__).parents[1] / "studio" / "static" / "studio.css"
ROOT = ".runyard-rd"
#: Studio rules the widget reuses: the graph drawing, the status badges and their colours.
SHARED_SELECTORS = ("svg.graph", ".badge", ".st-")


def studio_rules(css: str) -> str:
    """The studio's colour variables and graph/badge rules, scoped under the widget's root class."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        selectors = [s.strip() for s in selector.split(",")]
        if selectors == [":root"]:
            props = [p.strip() for p in body.split(";") if p.strip().startswith("--")]
            out.append(f"{ROOT} {{ {'; '.join(props)}; }}")
        elif all(s.startswith(SHARED_SELECTORS) for s in selectors):
            out.append(f"{', '.join(f'{ROOT} {s}' for s in selectors)} {{{body}}}")
    return "\n".join(out)


@functools.cache
def widget_css() -> str:
    return studio_rules(STUDIO_CSS.read_text()) + "\n" + (STATIC / "run_details.css").read_text()


@functools.cache
def plotly_source() -> str:
    """plotly.min.js of the installed plotly package (the studio serves the same file)."""
    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


class PlotlySource(ipywidgets.Widget):
    """plotly.js as a model of its own: ipywidgets' plain WidgetModel (no view, no front-end code), which
    every front-end that loads widgets can create, and which a saved notebook keeps like any other."""

    plotly_js = traitlets.Unicode("").tag(sync=True)


_shared: PlotlySource | None = None


def shared_plotly() -> PlotlySource:
    """The kernel session's one PlotlySource, made on first use (again if someone closed it)."""
    global _shared
    if _shared is None or _shared.comm is None:
        _shared = PlotlySource(plotly_js=plotly_source())
    return _shared


class RunDetailsView(anywidget.AnyWidget):
    """The widget model: what to draw (`snapshot`), what the user clicked (`selected`), and a reference
    to the kernel's shared plotly.js model (`plotly`)."""

    _esm = STATIC / "run_details.js"
    _css = traitlets.Unicode().tag(sync=True)
    snapshot = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    plotly = traitlets.Instance(PlotlySource, allow_none=True).tag(
        sync=True, **ipywidgets.widget_serialization
    )

    def __init__(self, **kwargs: object) -> None:
        super().__init__(_css=widget_css(), plotly=shared_plotly(), **kwargs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget, with the text summary as its plain-text form: what a notebook viewer without
        widgets (nbconvert, a git host's preview) shows instead of `RunDetailsView(...)`."""
        bundle = super()._repr_mimebundle_(**kwargs)  # anywidget's (data, metadata), or None
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict) and self.snapshot:
            data["text/plain"] = summary(self.snapshot)
        return bundle
