"""Where and how a stage computes: the device, bf16 autocast and CPU threads, resolved in one place.

:func:`resolve_runtime` turns the params' ``runtime.device``, ``runtime.num_threads`` and
``train.bf16`` into a :class:`Runtime`; training, evaluation, robustness and the probe take the
device and the bf16 decision from it instead of each resolving ``runtime.device`` and bf16 itself.
A grid cell (:func:`pipeline.orchestration.cell.cell`) resolves it once and passes it to its train,
evaluate and robustness steps; a stage run on its own resolves it from its params; ``predict`` and
``embed`` resolve theirs from ``--device`` and ``--bf16`` (:meth:`Runtime.resolve`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from pipeline.models.device import pick_device
from pipeline.models.inference import use_bf16

if TYPE_CHECKING:
    from pipeline.config.params import Params


@dataclass(frozen=True)
class Runtime:
    """The resolved run-time settings of a stage.

    Attributes:
        device: where the model runs (:func:`pipeline.models.device.pick_device`).
        bf16: the requested bf16 mode (``train.bf16``: auto | on | off); :meth:`bf16_for` decides per model.
        num_threads: CPU threads for torch (0: torch's default).
    """

    device: torch.device
    bf16: str
    num_threads: int = 0

    @classmethod
    def resolve(cls, device: str = "auto", bf16: str = "off", num_threads: int = 0, *, profile: str | None = None) -> Runtime:
        """The runtime of a requested ``device`` (auto | cpu | cuda, under ``profile``) and ``bf16`` mode.

        The one place a device request becomes a device (:func:`pipeline.models.device.pick_device`):
        :func:`resolve_runtime` for the stages, ``--device``/``--bf16`` for ``predict`` and ``embed``.

        Raises:
            UserError: the device cannot run here.
        """
        return cls(pick_device(device, profile=profile), bf16, num_threads)

    def bf16_for(self, variant: str) -> bool:
        """Whether a model of ``variant`` runs its forward under bf16 autocast here (:func:`use_bf16`)."""
        return use_bf16(self.bf16, self.device, variant)

    def apply_threads(self) -> None:
        """Set torch's CPU threads to :attr:`num_threads` (left alone at 0)."""
        if self.num_threads:
            torch.set_num_threads(self.num_threads)


def resolve_runtime(params: Params) -> Runtime:
    """The :class:`Runtime` of ``params`` (``runtime.device`` under ``profile``, ``train.bf16``, ``runtime.num_threads``).

    Raises:
        UserError: the device cannot run here (:func:`pipeline.models.device.pick_device`).
    """
    rt = params.runtime
    return Runtime.resolve(rt.device, params.train.bf16, rt.num_threads, profile=params.profile)
