"""The tracking server: runyard's store, artifacts and auth over HTTP, plus MLflow-compatible routes."""
