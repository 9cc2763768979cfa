"""Noise-robustness layer: perturbations, noise sources, the ``robustness`` stage and its plots.

- :mod:`pipeline.robustness.perturb`: batched, seeded torch perturbations and their registry;
- :mod:`pipeline.robustness.noises`: noise banks (synthetic, Speech Commands, any folder);
- :mod:`pipeline.robustness.stage`: :func:`~pipeline.robustness.stage.run_robustness` and the
  summaries the report reads;
- :mod:`pipeline.robustness.plots`: the robustness figures (drawn by the report, not by cells).

The package itself re-exports only the lower-layer modules (perturbations, noises), so that
importing :mod:`pipeline.robustness.perturb` does not pull in the stage and its tracking.
"""

from pipeline.robustness.noises import load_noise, synthetic_noises
from pipeline.robustness.perturb import INFO, PERTURBATIONS, apply

__all__ = ["INFO", "PERTURBATIONS", "apply", "load_noise", "synthetic_noises"]
