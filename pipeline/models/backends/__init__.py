"""Back-ends: features -> logits (and ``embed`` -> pooled representation)."""

from types import MappingProxyType

from pipeline.models.backends.attention_rnn import AttentionRNNBackend
from pipeline.models.backends.base import Backend
from pipeline.models.backends.cnnsa import CNNSABackend
from pipeline.models.backends.crnn import CRNNBackend
from pipeline.models.backends.fcn import FCNBackend
from pipeline.models.backends.gated_crnn import GatedCRNNBackend
from pipeline.models.backends.hcnn import HarmonicCNNBackend
from pipeline.models.backends.musicnn import MusicnnBackend
from pipeline.models.backends.samplecnn import SampleCNNBackend, SampleCNNSEBackend
from pipeline.models.backends.short_chunk import ShortChunkCNNBackend, ShortChunkResNetBackend

BACKENDS = MappingProxyType(
    {
        "fcn": FCNBackend,
        "crnn": CRNNBackend,
        "musicnn": MusicnnBackend,
        "samplecnn": SampleCNNBackend,
        "samplecnn_se": SampleCNNSEBackend,
        "hcnn": HarmonicCNNBackend,
        "cnnsa": CNNSABackend,
        "short_cnn": ShortChunkCNNBackend,
        "short_res": ShortChunkResNetBackend,
        "attention_rnn": AttentionRNNBackend,
        "gated_crnn": GatedCRNNBackend,
    }
)
"""Back-end classes by name (read-only)."""

__all__ = [
    "BACKENDS",
    "AttentionRNNBackend",
    "Backend",
    "CNNSABackend",
    "CRNNBackend",
    "FCNBackend",
    "GatedCRNNBackend",
    "HarmonicCNNBackend",
    "MusicnnBackend",
    "SampleCNNBackend",
    "SampleCNNSEBackend",
    "ShortChunkCNNBackend",
    "ShortChunkResNetBackend",
]
