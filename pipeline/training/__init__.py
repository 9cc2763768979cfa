"""Training: the fit loop, batches, learning-rate schedules, distributed helpers."""
