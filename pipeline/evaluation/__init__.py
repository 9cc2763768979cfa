"""Evaluation: test metrics, the evaluation stage, evidence (intervals, paired differences), statistics."""
