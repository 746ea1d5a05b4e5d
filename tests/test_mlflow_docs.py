"""docs/server.md's table of MLflow routes names every route the handler table serves, and no other as
served: the documentation cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from runyard.mlflow_api.dispatch import routes

SERVER_MD = Path(__file__).resolve().parents[1] / "docs" / "server.md"


def _documented_as_served() -> set[str]:
    text = SERVER_MD.read_text(encoding="utf-8")
    section = text[text.index("## MLflow clients") :]
    section = section[: section.index("MLflow's artifact proxy")]
    rows = re.findall(r"^\| `(GET|POST|PATCH|DELETE) ([^`]+)` \| (served|not served)", section, re.MULTILINE)
    assert rows, "docs/server.md has no MLflow route table"
    return {f"{method} {path}" for method, path, status in rows if status == "served"}


def test_the_route_table_in_the_docs_is_the_served_one() -> None:
    served = {f"{r.method} {r.template}" for r in routes()}
    documented = _documented_as_served()
    assert served - documented == set(), "served but missing from docs/server.md"
    assert documented - served == set(), "documented as served but not in the handler table"
