"""MLflow's tracking API over runyard's store: one set of handlers, two doors.

MLflow clients reach a workspace in one of two ways, and both end in the same handlers (`dispatch.py`):

- over HTTP: `runyard server` answers `/api/2.0/mlflow/...` (server/routes_mlflow.py) and proxies
  artifacts under `/api/2.0/mlflow-artifacts/...` (server/routes_mlflow_artifacts.py);
- in process: `mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())` on an embedded workspace gives a
  `runyard:` URI, which MLflow resolves through this package's tracking-store plugin (plugin.py, an entry
  point), so no server is needed.

A handler takes the request body MLflow's client sends (its REST API's JSON), checks it with a pydantic
model, calls the store, and returns MLflow's response JSON. Errors are `MlflowError`s with MLflow's
error codes and wording, so the client raises the same typed exceptions it raises against `mlflow server`.

This package sits with the faces (server, studio, cli): it imports the store and core, never the server.
"""
