"""Model zoo: parameter counts (docs/spec.md §2.10), shapes, short inputs, swaps, options, APIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.backends.fcn import FCNBackend
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.checkpoint import load_model, save_model
from pipeline.models.spec import REFERENCE_CLASSES, Paper, docstring_parts
from pipeline.models.zoo import (
    VARIANTS,
    VariantSpec,
    build_model,
    count_parameters,
    input_length_for,
    list_variants,
    registry_table,
)

SMOKE_WIDTH = 0.25
REFERENCE_VARIANTS = [name for name, spec in VARIANTS.items() if spec.paper.params is not None]
ALL_VARIANTS = list(VARIANTS)


def _build(
    variant: str, n_classes: int = 10, multilabel: bool = True, width: float = 1.0, input_length: int | None = None, **options
) -> AudioModel:
    if input_length is None:
        input_length = VARIANTS[variant.rpartition("+")[2]].paper.input_length
    return build_model(ModelConfig(variant, n_classes, multilabel, width=width, input_length=input_length, options=options))


def _train_step(model: AudioModel, n_samples: int, multilabel: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model.train()
    wave = torch.randn(2, n_samples) * 0.1
    logits = model(wave)
    n = model.config.n_classes
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits, torch.randint(0, 2, (2, n)).float())
    else:
        loss = F.cross_entropy(logits, torch.randint(0, n, (2,)))
    loss.backward()
    return logits


# ----------------------------------------------------------------------------- registry


PAPER_VARIANTS = {
    "fcn",
    "crnn",
    "musicnn",
    "samplecnn",
    "samplecnn_se",
    "hcnn",
    "cnnsa",
    "short_cnn",
    "short_res",
    "attention_rnn",
    "gated_crnn",
}


@pytest.mark.fast
def test_registry_holds_the_eleven_paper_variants_in_module_order() -> None:
    """The back-end modules declare the eleven variants of the paper; a contributor's new module adds to them."""
    assert PAPER_VARIANTS <= set(ALL_VARIANTS)
    assert [spec.name for spec in list_variants()] == ALL_VARIANTS
    modules = [spec.backend.__module__ for spec in list_variants()]
    assert modules == sorted(modules)  # found by a scan of the package, in module order
    for spec in list_variants():
        assert isinstance(spec, VariantSpec)
        assert spec.min_input_length > 0
        assert spec.description and spec.notes, f"{spec.backend.__name__}'s docstring needs a summary line and a Notes: section"


@pytest.mark.fast
def test_a_variant_is_described_by_its_backend_docstring() -> None:
    """The summary paragraph is the description, the ``Notes:`` section the notes; neither is inherited."""

    class Toy(FCNBackend):
        """Toy (docs): a summary
        over two lines.

        Architecture.

        Notes:
            Differs from the reference
            in one way.

        Shape:
            anything.
        """

    assert docstring_parts(Toy) == ("Toy (docs): a summary over two lines.", "Differs from the reference in one way.")

    class Bare(FCNBackend):
        pass

    assert docstring_parts(Bare) == ("", "")
    spec = VariantSpec(Toy, Paper(16_000, (1, 2, 3)))
    assert (spec.name, spec.paper.params_for(35), spec.paper.params_for(10)) == ("fcn", 2, None)
    with pytest.raises(ValueError, match="one per output count"):
        Paper(16_000, (1, 2))


@pytest.mark.fast
def test_registry_table_rows() -> None:
    rows = registry_table(50)
    assert [row["name"] for row in rows] == ALL_VARIANTS
    for row in rows:
        assert set(row) >= {"name", "frontend", "backend", "input_length", "params", "reference_params"}
        if row["reference_params"] is not None:
            assert row["params"] == row["reference_params"]


# ----------------------------------------------------------------------------- parameter counts


@pytest.mark.fast
@pytest.mark.parametrize("n_classes", [50, 35, 17])
@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_parameter_count_matches_spec(variant: str, n_classes: int) -> None:
    reference = VARIANTS[variant].paper.params_for(n_classes)
    count = count_parameters(_build(variant, n_classes))
    assert count == pytest.approx(reference, rel=0.01)
    assert count == reference  # our layer stacks reproduce the reference exactly


@pytest.mark.fast
def test_parameter_counts_exclude_buffers() -> None:
    model = _build("hcnn", 50)
    assert count_parameters(model) == 3_631_551
    assert count_parameters(model.frontend) == 1  # Q only; centres and STFT window are constants
    fixed = _build("hcnn", 50, learn_bw="fix")
    assert count_parameters(fixed) == 3_631_550


@pytest.mark.fast
@pytest.mark.parametrize(("variant", "expected"), [("attention_rnn", 202_218), ("gated_crnn", 972_196)])
def test_task_baseline_sizes(variant: str, expected: int) -> None:
    n = 35 if variant == "attention_rnn" else 17
    assert count_parameters(_build(variant, n)) == expected


# ----------------------------------------------------------------------------- shapes


# last conv-stack map (channels, freq, time) at the paper length, from the spec's tables
SPEC_FINAL_MAPS = {
    "fcn": (64, 1, 1),
    "crnn": (128, 1, 18),
    "samplecnn": (512, 1),
    "samplecnn_se": (512, 1),
    "hcnn": (256, 1, 1),
    "cnnsa": (256, 1, 118),
    "short_cnn": (512, 1, 1),
    "short_res": (512, 1, 2),
}


@pytest.mark.fast
@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_output_shape_at_paper_length(variant: str) -> None:
    model = _build(variant, 50).eval()
    length = VARIANTS[variant].paper.input_length
    stack = getattr(model.backend, "blocks", None) or getattr(model.backend, "stages", None)
    final_maps = []
    if stack is not None:
        stack.register_forward_hook(lambda module, inputs, output: final_maps.append(tuple(output.shape[1:])))
    with torch.no_grad():
        logits = model(torch.randn(2, length) * 0.1)
    assert logits.shape == (2, 50)
    assert torch.isfinite(logits).all()
    if variant in SPEC_FINAL_MAPS:
        assert final_maps == [SPEC_FINAL_MAPS[variant]]


@pytest.mark.parametrize("multilabel", [True, False], ids=["multilabel", "single"])
@pytest.mark.parametrize("seconds", [1, 4])
@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_smoke_width_forward_backward_on_short_inputs(variant: str, seconds: int, multilabel: bool) -> None:
    model = _build(variant, 10, multilabel, width=SMOKE_WIDTH, input_length=seconds * 16_000)
    logits = _train_step(model, seconds * 16_000, multilabel)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_runs_at_min_input_length(variant: str) -> None:
    length = VARIANTS[variant].min_input_length
    model = _build(variant, 10, width=SMOKE_WIDTH, input_length=length)
    assert _train_step(model, length, True).shape == (2, 10)


@pytest.mark.parametrize("variant", ["samplecnn", "fcn", "hcnn"])
def test_longer_inputs_use_global_max_pooling(variant: str) -> None:
    model = _build(variant, 5, width=SMOKE_WIDTH).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3 * 59_049)).shape == (2, 5)


# ----------------------------------------------------------------------------- front-end swaps


@pytest.mark.parametrize(
    "variant",
    [
        "mfcc+short_cnn",
        "linear+short_cnn",
        "harmonic+short_cnn",
        "log+short_cnn",
        "cqt+short_cnn",
        "mel+hcnn",
        "harmonic+fcn",
        "cqt+crnn",
        "mfcc+musicnn",
        "harmonic+cnnsa",
        "log+short_res",
        "harmonic+attention_rnn",
        "cqt+gated_crnn",
        "raw+samplecnn_se",
    ],
)
def test_frontend_swaps_build_and_train(variant: str) -> None:
    model = _build(variant, 10, width=SMOKE_WIDTH, input_length=16_000)
    assert model.frontend.name == variant.partition("+")[0]
    assert _train_step(model, 16_000, True).shape == (2, 10)


@pytest.mark.fast
def test_swap_carries_compatible_frontend_settings() -> None:
    assert _build("mfcc+short_cnn", width=SMOKE_WIDTH).frontend.transform.log_mel.n_mels == 128
    harmonic = _build("harmonic+short_cnn", width=SMOKE_WIDTH)
    assert harmonic.backend.input_norm.num_features == 6  # BN over the harmonic channels
    assert _build("linear+attention_rnn", width=SMOKE_WIDTH).frontend.hop_length == 128


@pytest.mark.fast
@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("mel+samplecnn", "cannot feed"),
        ("raw+fcn", "cannot feed"),
        ("wavelet+fcn", "unknown front-end"),
        ("vgg", "unknown model variant"),
    ],
)
def test_bad_names_raise_clear_errors(variant: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(variant, 10, True))


# ----------------------------------------------------------------------------- options and width


@pytest.mark.fast
def test_unknown_option_names_the_option_and_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown option 'n_harmonic'.*n_harmonics"):
        _build("hcnn", width=SMOKE_WIDTH, n_harmonic=4)
    with pytest.raises(ValueError, match=r"unknown option 'n_harmonics'.*n_mels"):
        _build("short_cnn", width=SMOKE_WIDTH, n_harmonics=4)


def test_harmonic_options_reach_the_frontend() -> None:
    model = _build("hcnn", width=SMOKE_WIDTH, n_harmonics=4, semitone_scale=1, learn_f0=True, learn_bw="fix")
    frontend = model.frontend
    assert frontend.out_channels == 4 and frontend.n_bins == 71
    assert model.backend.input_norm.num_features == 4
    assert [name for name, _ in frontend.named_parameters()] == ["transform.log_f0"]
    assert _train_step(model, 16_000, True).shape == (2, 10)


@pytest.mark.fast
def test_invalid_option_value_raises() -> None:
    with pytest.raises(ValueError, match="learn_bw"):
        _build("hcnn", width=SMOKE_WIDTH, learn_bw="sometimes")
    with pytest.raises(ValueError, match="hcnn_pools"):
        _build("hcnn", width=SMOKE_WIDTH, hcnn_pools="gtzan")


def test_n_mels_option() -> None:
    model = _build("short_cnn", width=SMOKE_WIDTH, n_mels=64)
    assert model.frontend.n_bins == 64
    assert _train_step(model, 16_000, False).shape == (2, 10)


@pytest.mark.parametrize(
    ("multilabel", "length", "pools"), [(False, 16_384, "kws"), (True, 48_000, "dcase"), (True, 80_000, "mtat")]
)
def test_hcnn_pools_follow_task(multilabel: bool, length: int, pools: str) -> None:
    model = build_model(ModelConfig("hcnn", 10, multilabel, width=SMOKE_WIDTH, input_length=length))
    assert model.backend.pools == pools
    with torch.no_grad():
        stack = model.backend.blocks(model.frontend(torch.randn(1, length)))
    assert stack.shape[2:] == (1, 1)  # each task's length collapses to 1 x 1 as in the reference


@pytest.mark.parametrize("width", [0.01, 0.3, 0.5])
def test_width_scales_channels_and_keeps_heads_divisible(width: float) -> None:
    model = _build("cnnsa", width=width, input_length=16_000)
    d_model = model.backend.embedding_dim
    assert d_model % model.backend.n_heads == 0 and d_model >= 8
    assert _train_step(model, 16_000, True).shape == (2, 10)
    assert count_parameters(_build("short_cnn", width=width)) < count_parameters(_build("short_cnn"))


@pytest.mark.fast
def test_invalid_config_values() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        build_model(ModelConfig("fcn", 0, True))
    with pytest.raises(ValueError, match="width"):
        build_model(ModelConfig("fcn", 5, True, width=0.0))


# ----------------------------------------------------------------------------- attention / frame outputs


def test_cnnsa_returns_attention_per_layer_and_head() -> None:
    model = _build("cnnsa", 7, width=SMOKE_WIDTH, input_length=32_000).eval()
    with torch.no_grad():
        features = model.frontend(torch.randn(2, 32_000))
        logits, maps = model.backend(features, return_attention=True)
        plain = model.backend(features)
    torch.testing.assert_close(logits, plain)
    tokens = 1 + (1 + 32_000 // 256 + 7) // 8  # CLS + time steps after three stride-2 blocks
    assert len(maps) == 2
    for weights in maps:
        assert weights.shape == (2, 8, tokens, tokens)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 8, tokens))


def test_attention_rnn_returns_attention_over_time() -> None:
    model = _build("attention_rnn", 35, multilabel=False, width=SMOKE_WIDTH).eval()
    with torch.no_grad():
        logits, maps = model.backend(model.frontend(torch.randn(2, 16_000)), return_attention=True)
    assert logits.shape == (2, 35) and len(maps) == 1
    weights = maps[0]  # same (batch, heads, queries, keys) layout as CNN-SA: one head, one query
    assert weights.shape == (2, 1, 1, 1 + 16_000 // 128)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 1, 1))


def test_gated_crnn_logits_are_the_attention_pooled_probability() -> None:
    model = _build("gated_crnn", 17, width=SMOKE_WIDTH).eval()
    with torch.no_grad():
        logits, frames = model.backend(model.frontend(torch.randn(2, 48_000)), return_frames=True)
    n_frames = 1 + 48_000 // 664
    assert frames["probabilities"].shape == frames["attention"].shape == (2, n_frames, 17)
    clip = (frames["attention"] * frames["probabilities"]).sum(1)
    torch.testing.assert_close(torch.sigmoid(logits), clip, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_embed_shape(variant: str) -> None:
    model = _build(variant, 10, width=SMOKE_WIDTH, input_length=16_000).eval()
    with torch.no_grad():
        assert model.embed(torch.randn(2, 16_000)).shape == (2, model.backend.embedding_dim)


# ----------------------------------------------------------------------------- input lengths


@pytest.mark.parametrize(
    ("variant", "profile", "clip", "kind", "expected"),
    [
        ("fcn", "paper", 465_984, "multilabel", 464_000),
        ("crnn", "paper", 16_000, "single", 16_000),  # capped at the clip (docs/decisions.md, short clips)
        ("musicnn", "paper", 465_984, "multilabel", 48_000),
        ("samplecnn", "paper", 465_984, "multilabel", 59_049),
        ("cnnsa", "paper", 465_984, "multilabel", 240_000),
        ("short_res", "paper", 160_000, "multilabel", 59_049),
        ("hcnn", "paper", 465_984, "multilabel", 80_000),
        ("hcnn", "paper", 160_000, "multilabel", 48_000),
        ("hcnn", "paper", 16_000, "single", 16_384),
        ("harmonic+short_cnn", "paper", 16_000, "single", 16_000),  # capped at the clip
        ("attention_rnn", "paper", 16_000, "single", 16_000),
        ("gated_crnn", "paper", 160_000, "multilabel", 160_000),
        ("gated_crnn", "paper", 16_000, "single", 16_000),
        ("fcn", "smoke", 64_000, "multilabel", 64_000),
        ("fcn", "smoke", 16_000, "single", 16_000),
        ("musicnn", "smoke", 64_000, "multilabel", 48_000),
        ("short_cnn", "smoke", 64_000, "multilabel", 59_049),
        ("samplecnn", "smoke", 16_000, "single", 16_002),  # the clip, rounded up to a frame of 3 samples
        ("samplecnn", "smoke", 32_000, "multilabel", 32_001),
        ("samplecnn_se", "smoke", 64_000, "multilabel", 59_049),
        ("samplecnn", "smoke", 19_683, "multilabel", 19_683),
        ("hcnn", "smoke", 16_000, "single", 16_000),
        ("hcnn", "smoke", 64_000, "multilabel", 48_000),
        ("attention_rnn", "smoke", 64_000, "multilabel", 16_000),
        ("gated_crnn", "smoke", 64_000, "multilabel", 64_000),
        ("short_cnn", "smoke", 500, "single", 1_024),
    ],
)
@pytest.mark.fast
def test_input_length_for(variant: str, profile: str, clip: int, kind: str, expected: int) -> None:
    assert input_length_for(variant, profile, clip, kind) == expected


@pytest.mark.fast
@pytest.mark.parametrize(
    "variant,clip,cap,expected",
    [
        ("fcn", 32_000, 16_000, 16_000),  # a crop of half the clip
        ("fcn", 16_000, 32_000, 16_000),  # a cap above the clip changes nothing
        ("samplecnn", 32_000, 16_000, 16_002),  # rounded up to a frame of 3 samples
        ("short_cnn", 32_000, 500, 1_024),  # never below the model's minimum
        ("musicnn", 64_000, 60_000, 48_000),  # never above the paper length
    ],
)
def test_input_length_for_caps_smoke_crops(variant: str, clip: int, cap: int, expected: int) -> None:
    assert input_length_for(variant, "smoke", clip, "multilabel", max_samples=cap) == expected


@pytest.mark.fast
def test_input_seconds_shortens_smoke_inputs_only() -> None:
    from pipeline.config.params import grid_model, load_params
    from pipeline.core.errors import UserError
    from pipeline.models.build import build_for_task
    from tests.conftest import REPO

    p = load_params(REPO / "params.yaml", overrides={"train": {"input_seconds": 1.0}})
    model = build_for_task(grid_model(p, "fcn"), "synth_tags", n_classes=14, multilabel=True, clip_samples=32_000)
    assert model.input_length == 16_000
    with pytest.raises(UserError, match="input_seconds"):
        load_params(REPO / "params.yaml", overrides={"profile": "paper", "train": {"input_seconds": 1.0}})


@pytest.mark.fast
def test_input_length_for_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="profile"):
        input_length_for("fcn", "fast", 16_000, "single")
    with pytest.raises(ValueError, match="task_kind"):
        input_length_for("fcn", "paper", 16_000, "multiclass")
    with pytest.raises(ValueError, match="clip_samples"):
        input_length_for("fcn", "paper", 0, "single")


# ----------------------------------------------------------------------------- caching and checkpoints


@pytest.mark.fast
@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_cache_spec_none_for_trainable_frontends(variant: str) -> None:
    frontend = _build(variant, width=SMOKE_WIDTH).frontend
    spec = frontend.cache_spec()
    if VARIANTS[variant].frontend in ("raw", "harmonic"):
        assert spec is None
    else:
        assert json.loads(json.dumps(spec)) == spec
        assert spec == _build(variant, width=SMOKE_WIDTH).frontend.cache_spec()


def test_checkpoint_round_trip(tmp_path) -> None:
    model = _build("hcnn", 3, width=SMOKE_WIDTH, input_length=16_000, learn_f0=True)
    _train_step(model, 16_000, True)
    model.eval()
    save_model(model, tmp_path, labels=["a", "b", "c"])
    loaded, card = load_model(tmp_path)
    wave = torch.randn(2, 16_000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave), model(wave))
    assert card["labels"] == ["a", "b", "c"]


def _docs_row(spec: VariantSpec) -> str:
    """The row of docs/models.md's variant table for ``spec``, with its parameter counts measured."""
    counts = [
        count_parameters(build_model(ModelConfig(spec.name, n, True, input_length=spec.paper.input_length)))
        for n in REFERENCE_CLASSES
    ]
    settings = " ".join(str(v) for k, v in spec.frontend_kwargs.items() if k == "n_mels")
    frontend = f"`{spec.frontend}` {settings}".strip()
    cells = [f"`{spec.name}`", frontend, f"`{spec.backend_name}`", f"{spec.paper.input_length:,}", *(f"{c:,}" for c in counts)]
    return "| " + " | ".join([*cells, "min(L, clip)"]) + " |"


def _docs_variant_rows() -> dict[str, list[str]]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    table = text[text.index("## Variants") :].split("\n\n## ")[0]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| `")]
    return {row[0].strip("`"): row for row in rows}


@pytest.mark.fast
def test_docs_variant_table_lists_exactly_the_registry_with_measured_counts() -> None:
    """docs/models.md's variant table has one row per registry variant, in registry order, and its three
    parameter counts are the measured ones; a missing or wrong row fails with the row to paste."""
    rows = _docs_variant_rows()
    wrong = []
    for spec in list_variants():
        expected = _docs_row(spec).split(" | ")[4:7]
        if spec.name not in rows or rows[spec.name][4:7] != expected:
            wrong.append(_docs_row(spec))
    assert not wrong, "docs/models.md, ## Variants: add or correct these rows (edit the prose columns):\n" + "\n".join(wrong)
    assert list(rows) == ALL_VARIANTS


def test_packaged_model_bytes_are_the_same_for_the_same_weights(tmp_path) -> None:
    """model.pt is a DVC output: saving the same model twice gives the same bytes (no temporary name inside)."""
    import hashlib

    from pipeline.models.base import ModelConfig
    from pipeline.models.checkpoint import save_model
    from pipeline.models.zoo import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig("fcn", 3, multilabel=True, width=0.125, input_length=16_000))
    digests = []
    for name in ("a", "b"):
        save_model(model, tmp_path / name, ["x", "y", "z"], metadata={"task": "t"})
        digests.append(hashlib.sha256((tmp_path / name / "model.pt").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
