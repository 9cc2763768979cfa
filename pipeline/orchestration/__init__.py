"""Orchestration: the pipeline description (dvc.yaml), the stages, task runners, name checks."""
