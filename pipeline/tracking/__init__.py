"""Tracking: MLflow runs, the model registry, the team server, the compare table."""
