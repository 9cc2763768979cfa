"""The MLflow runs table as a researcher opens it: a *shared view* per task experiment.

MLflow 3.17 keeps the runs table's columns and sort in the browser's local storage; nothing on the
server makes a column the default. Its one server-side form is a shared view: an experiment tag
``mlflow.sharedViewState.<key>`` holding the view as JSON, opened by
``#/experiments/<id>/runs?viewStateShareKey=<key>`` (docs/decisions.md).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

RUNS_VIEW = "musicrep"
"""Share key of the runs-table view each task's experiment holds (:func:`set_runs_view`)."""
SHARED_VIEW_TAG = "mlflow.sharedViewState."
"""MLflow's UI (3.x) keeps a shared view of the runs table in this experiment tag, plus its share key;
``#/experiments/<id>/runs?viewStateShareKey=<key>`` opens it. No setting makes a column default."""


def runs_view_state(primary: str) -> dict[str, Any]:
    """The runs table sorted by ``test/<primary>``, best first, with it and its 95 % interval as columns."""
    columns = [f"metrics.`test/{primary}{suffix}`" for suffix in ("", "_ci_low", "_ci_high")]
    return {"orderByKey": columns[0], "orderByAsc": False, "selectedColumns": [*columns, "tags.`variant`", "tags.`bf16`"]}


def set_runs_view(c: MlflowClient, task: str, primary: str) -> None:
    """Store :func:`runs_view_state` in ``task``'s experiment under the share key :data:`RUNS_VIEW`."""
    exp = c.get_experiment_by_name(task)
    if exp is not None:
        c.set_experiment_tag(exp.experiment_id, SHARED_VIEW_TAG + RUNS_VIEW, json.dumps(runs_view_state(primary)))
