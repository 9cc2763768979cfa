"""CNN-SA: short-chunk ResNet front + Transformer encoder (Won et al. 2019; [SOTA] 2020 code),
docs/spec.md §2.6: 128 mel, L = 240,000.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import TypedDict

from pipeline.models.backends.base import Backend, collapse_frequency
from pipeline.models.layers import R2, OutputLayer, scale_width, stack
from pipeline.models.options import Count
from pipeline.models.spec import Paper, VariantSpec

CNNSA_CHANNELS = 128
CNNSA_STRIDES = (2, 2, 2, (2, 1), (2, 1), (2, 1), (2, 1))
N_HEADS = 8
N_LAYERS = 2
FFN_FACTOR = 4
ATTENTION_DROPOUT = 0.5
HIDDEN_DROPOUT = 0.4
LAYER_NORM_EPS = 1e-12
CLS_SEED = 0


def fixed_cls_vector(dim: int, seed: int = CLS_SEED) -> torch.Tensor:
    """The untrained CLS token: ``dim`` values drawn U[0, 1) with NumPy's legacy seed ``seed``.

    Identical to the reference's ``np.random.seed(0); np.random.random((1, 256))`` at dim 256.
    """
    return torch.from_numpy(np.random.RandomState(seed).random_sample(dim)).float()


class EncoderLayer(nn.Module):
    """BERT-style post-LN Transformer layer (no mask).

    ``x = LN(x + Dropout_h(MHA(x)))``; ``x = LN(x + Dropout_h(W2 GELU(W1 x)))``, with
    dropout ``attention_dropout`` on the attention weights, exact (erf) GELU, LN eps 1e-12.

    Shape:
        ``(batch, tokens, d)`` -> ``(batch, tokens, d)``; with ``return_attention`` also the
        attention weights ``(batch, heads, tokens, tokens)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ffn: int,
        attention_dropout: float = ATTENTION_DROPOUT,
        hidden_dropout: float = HIDDEN_DROPOUT,
    ) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(d_model, n_heads, dropout=attention_dropout, batch_first=True)
        self.attention_dropout = nn.Dropout(hidden_dropout)
        self.attention_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.ffn_in = nn.Linear(d_model, d_ffn)
        self.ffn_out = nn.Linear(d_ffn, d_model)
        self.ffn_dropout = nn.Dropout(hidden_dropout)
        self.ffn_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(x, x, x, need_weights=return_attention, average_attn_weights=False)
        x = self.attention_norm(x + self.attention_dropout(attended))
        x = self.ffn_norm(x + self.ffn_dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))
        return x, weights


class CNNSAOptions(TypedDict, total=False):
    """Options of the ``cnnsa`` back-end."""

    n_heads: Count
    n_layers: Count


class CNNSABackend(Backend):
    """CNN-SA (Won et al. 2019/2020): 7 residual blocks + 2-layer Transformer encoder with a fixed CLS token, 15 s.

    BN(in) -> R2 x7 -> tokens (T, 256) with a fixed CLS prepended -> 2 encoder layers ->
    pooler (Linear + tanh on CLS) -> Dropout -> Linear.

    No positional encoding (as the reference). ``d_model`` is the last CNN width
    (``256 w``, rounded to a multiple of ``n_heads``).

    Attention maps: ``forward(x, return_attention=True)`` returns
    ``(logits, [weights per layer])``, each ``(batch, heads, tokens, tokens)`` with token 0
    the CLS token and token ``i >= 1`` the i-th CNN time step. In training mode the weights
    are those after attention dropout; call in ``eval()`` mode for interpretation.

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, d_model)``.

    Notes:
        Fixed CLS vector broadcast to any batch size (reference pre-tiles 64). d_model = 256 w rounded to a multiple of
        n_heads. PyTorch default initialisation. A frequency axis left > 1 (other n_mels) is max-pooled.
    """

    name: ClassVar[str] = "cnnsa"
    OPTION_SPEC: ClassVar[type] = CNNSAOptions

    def __init__(
        self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0, n_heads: int = N_HEADS, n_layers: int = N_LAYERS
    ) -> None:
        super().__init__(n_classes)
        for name, value in {"n_heads": n_heads, "n_layers": n_layers}.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        channels = scale_width(CNNSA_CHANNELS, width)
        d_model = scale_width(2 * CNNSA_CHANNELS, width, multiple_of=n_heads)
        widths = (channels, channels, d_model, d_model, d_model, d_model, d_model)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.blocks, _ = stack(R2, in_channels, zip(widths, CNNSA_STRIDES))
        self.register_buffer("cls", fixed_cls_vector(d_model), persistent=False)
        self.layers = nn.ModuleList([EncoderLayer(d_model, n_heads, FFN_FACTOR * d_model) for _ in range(n_layers)])
        self.pooler = nn.Linear(d_model, d_model)
        self.embedding_dim = d_model
        self.n_heads = n_heads
        self.head = OutputLayer(d_model, n_classes)

    def encode(self, features: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features -> (pooled CLS ``(batch, d)``, attention maps per layer if asked)."""
        tokens = collapse_frequency(self.blocks(self.input_norm(features))).transpose(1, 2)  # (batch, T, d)
        cls = self.cls.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1)
        maps = []
        for layer in self.layers:
            x, weights = layer(x, return_attention)
            if return_attention:
                maps.append(weights)
        return torch.tanh(self.pooler(x[:, 0])), maps

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.encode(features)[0]

    def forward(
        self, features: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        pooled, maps = self.encode(features, return_attention)
        logits = self.classify(pooled)
        return (logits, maps) if return_attention else logits


VARIANTS = (
    VariantSpec(
        CNNSABackend, Paper(240_000, (10_521_652, 10_517_797, 10_513_171)), frontend_kwargs={"n_mels": 128}, cpu_bf16=True
    ),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
