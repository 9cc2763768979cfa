"""Noise-robustness layer: perturbations, noise sources and the ``robustness`` stage.

- :mod:`pipeline.robustness.perturb`: batched, seeded torch perturbations and their registry;
- :mod:`pipeline.robustness.noises`: noise banks (synthetic, Speech Commands, any folder);
- :mod:`pipeline.robustness.stage`: :func:`run_robustness` and the report helpers.
"""

from pipeline.robustness.noises import load_noise, synthetic_noises
from pipeline.robustness.perturb import INFO, PERTURBATIONS, apply
from pipeline.robustness.stage import plot_task_curves, robustness_summary, run_robustness

__all__ = [
    "INFO", "PERTURBATIONS", "apply", "load_noise", "synthetic_noises",
    "run_robustness", "robustness_summary", "plot_task_curves",
]
