"""The catalogue of the reference's published models (``sota:<dataset>/<model>``) and their tags.

Pinned source: raw files of :data:`UPSTREAM_REPO` at :data:`UPSTREAM_COMMIT`, with the SHA-256,
size and git blob id of each mirrored file (from the mirror's ``manifest.json``). The 50 output tags of each dataset
are :data:`pipeline.data.tag_vocabularies.TAGS` (kept in code so that listing and fetching need
no extra file); ``tests/test_pretrained.py`` checks all of it against the mirror.
Fetching and conversion: :mod:`pipeline.models.pretrained`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.errors import UserError
from pipeline.data.tag_vocabularies import TAGS

PREFIX = "sota:"
UPSTREAM_REPO = "minzwon/sota-music-tagging-models"
UPSTREAM_COMMIT = "bbcae87e2a25f46cdb5132fca2f400263439a98c"
"""The commit the mirror's files were taken from (its ``manifest.json``); the blobs are upstream's."""
RAW_BASE = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}"
LICENSE = "MIT (Copyright (c) 2020 Music Technology Group, Universitat Pompeu Fabra)"


@dataclass(frozen=True)
class PretrainedSpec:
    """One published reference model.

    Attributes:
        name: ``sota:<dataset>/<model>`` (``<model>`` is our zoo's variant name).
        dataset: ``mtat``, ``msd`` or ``jamendo`` (its 50 tags: :data:`~pipeline.data.tag_vocabularies.TAGS`).
        variant: our zoo variant the weights map onto.
        upstream_dir: the model's folder name upstream (``models/<dataset>/<upstream_dir>/``).
        input_length: samples per input at 16 kHz (the reference's training length).
        sha256, size, git_blob: of the upstream file (None where it is not mirrored).
        unavailable: why it cannot be fetched (empty when it can).
    """

    name: str
    dataset: str
    variant: str
    upstream_dir: str
    input_length: int
    sha256: str | None = None
    size: int | None = None
    git_blob: str | None = None
    unavailable: str = ""

    @property
    def url(self) -> str:
        return f"{RAW_BASE}/models/{self.dataset}/{self.upstream_dir}/best_model.pth"

    @property
    def mirror_path(self) -> str:
        """Path of the file inside a mirror folder (and inside ``downloads/``)."""
        return f"sota/{self.dataset}/{self.variant}/best_model.pth"

    @property
    def tags(self) -> tuple[str, ...]:
        return TAGS[self.dataset]


_MIRRORED = {  # name: (input length, sha256, bytes, git blob) from the mirror's manifest.json
    "mtat/fcn": (
        464_000,
        "e89d751202d38c3ae69855782bc27010f87051958dbec64f5aa762364dbac271",
        1_902_811,
        "970d99eb564935d36e2f4b71712a250a081229e0",
    ),
    "mtat/crnn": (
        464_000,
        "cd22fc70cafd06f8f2bfc7dd795abccb1f4b50d5b09094c39ad100baf87475a3",
        1_687_630,
        "884e1ffa3b4d005794b225996163d1ef5d64206b",
    ),
    "mtat/musicnn": (
        48_000,
        "690ace3bb5d49d90dd38fe3ec05a1185350b3bc3742bd7ee941f56b649b2c893",
        3_257_172,
        "f535468c253f5d9a6e87c4088d234846d7738cc2",
    ),
    "msd/fcn": (
        464_000,
        "6012aa7eecf864a8081faedca56af054521e8dfb9c5c98659a3dd5d3e1e66f21",
        1_902_815,
        "10e77ca885b1f0f771274baaf2b1867a72a08083",
    ),
    "msd/crnn": (
        464_000,
        "ebb99855ed0c83f38845db9cfb383dd6fc70938bc58701dcb66e18af9ee7fbea",
        1_687_711,
        "5e4334531c3e630521d329c68a39ab374d61418c",
    ),
    "jamendo/fcn": (
        464_000,
        "7bce08a66dbc70d096b0a330f44b4cacd9aa25519b83489fbb98f2164a194e2b",
        1_902_815,
        "d236c42b7757a5d7fd28535ec6a620ed78049901",
    ),
    "jamendo/crnn": (
        464_000,
        "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215",
        1_687_626,
        "20045ae7f5bf5882c95512f786555a51f5223d96",
    ),
    "jamendo/musicnn": (
        48_000,
        "66280f4859376377c47f64313c7ac889a3201fdb06a01bf6e94ac6e619081bb5",
        3_257_168,
        "61fc3de978b34df788d267ba8a0c2f06d783df9a",
    ),
}
_NOT_MIRRORED = {  # our variant: (upstream folder, reference input length)
    "hcnn": ("hcnn", 80_000),
    "short_res": ("short_res", 59_049),
    "samplecnn": ("sample", 59_049),
    "samplecnn_se": ("se", 59_049),
    "cnnsa": ("attention", 240_000),
}
_NO_CHECKSUM = (
    "its weights are not mirrored, so musicrep keeps no SHA-256 to verify them and has no tested mapping onto its own model"
)


def _catalog() -> dict[str, PretrainedSpec]:
    out: dict[str, PretrainedSpec] = {}
    for key, (length, sha, size, blob) in _MIRRORED.items():
        dataset, variant = key.split("/")
        out[PREFIX + key] = PretrainedSpec(PREFIX + key, dataset, variant, variant, length, sha, size, blob)
    for dataset in TAGS:
        for variant, (folder, length) in _NOT_MIRRORED.items():
            out[f"{PREFIX}{dataset}/{variant}"] = PretrainedSpec(
                f"{PREFIX}{dataset}/{variant}", dataset, variant, folder, length, unavailable=_NO_CHECKSUM
            )
    out[f"{PREFIX}msd/musicnn"] = PretrainedSpec(
        f"{PREFIX}msd/musicnn",
        "msd",
        "musicnn",
        "musicnn",
        48_000,
        unavailable="its back-end has 512 channels and a 500-unit dense layer (the reference's MSD switch) where "
        "musicrep's musicnn builds 64/200, and its weights are not mirrored",
    )
    return out


CATALOG: dict[str, PretrainedSpec] = _catalog()
"""Every published reference model by name (treat as read-only)."""


def fetchable_names() -> list[str]:
    """The ``sota:`` names whose weights can be fetched (checked by SHA-256), in catalogue order."""
    return [n for n, s in CATALOG.items() if not s.unavailable]


def sota_help() -> str:
    """The ``sota:`` names for a command's help text."""
    return f"sota:DATASET/MODEL ({', '.join(fetchable_names())}; `musicrep pretrained list`)"


def results_name(name: str) -> str:
    """Where a ``sota:`` model's results go under ``metrics/<task>/``: ``sota:mtat/fcn`` -> ``sota-mtat/fcn``."""
    return name.strip().replace(":", "-")


def is_pretrained_name(name: object) -> bool:
    """True for ``sota:...`` names."""
    return isinstance(name, str) and name.strip().startswith(PREFIX)


def get_spec(name: str) -> PretrainedSpec:
    """The catalogue entry of ``name`` (``sota:mtat/fcn``; ``mtat/fcn`` is accepted too)."""
    key = name.strip()
    key = key if key.startswith(PREFIX) else PREFIX + key
    if key not in CATALOG:
        fetchable = ", ".join(fetchable_names())
        raise UserError(f"{name!r} is not a published reference model; use one of {fetchable} (`musicrep pretrained list`).")
    return CATALOG[key]
