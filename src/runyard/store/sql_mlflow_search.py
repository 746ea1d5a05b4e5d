"""MLflow's views of runs and metrics: the latest metric values and run/experiment search in SQL.

(Being written for issue 16: `mlflow_latest_metrics` reads the plain summaries for now.)
"""

from __future__ import annotations

from collections.abc import Sequence

from runyard.store.records import MlflowMetric
from runyard.store.sql_base import SqlBase


class SqlMlflowSearch(SqlBase):
    def mlflow_latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[MlflowMetric]]:
        """Each run's metrics as MLflow shows them on the run, in one query."""
        out: dict[str, list[MlflowMetric]] = {r: [] for r in run_ids}
        for s in self.get_metric_summaries(list(run_ids)):  # type: ignore[attr-defined]
            if s.last is not None:
                out[s.run_id].append(MlflowMetric(s.name, s.last, 0.0, s.last_step or 0))
        return out
