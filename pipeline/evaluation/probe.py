"""Frozen-embedding probes: ``musicrep probe DATASET --model M [--seed K] [--random-init]``.

Linear evaluation as in representation-learning papers and HEAR 2021: the embedding model is
frozen, every clip of DATASET becomes one vector (:mod:`pipeline.evaluation.probe_embeddings`: mean of the
evaluation chunks' pooled back-end features, cached per weights, segments and layer), and a small
classifier is trained on DATASET's own **train** split, chosen on its **val** split only, and
scored once on its **test** split:

- ``linear``: standardised embeddings -> logistic regression (single-label: multinomial;
  multi-label: one-vs-rest), ``C`` in :data:`LINEAR_C`;
- ``mlp``: standardised embeddings -> one hidden layer of :data:`MLP_HIDDEN` ReLU units (Adam,
  scikit-learn's ``MLPClassifier``; multi-label: one sigmoid per class), L2 ``alpha`` in
  :data:`MLP_ALPHA`, as HEAR's shallow downstream MLP.

The probes are chosen on the dataset's primary metric (accuracy for single-label, macro ROC-AUC for
multi-label, :func:`pipeline.evaluation.stats.metric_on`), reported with a 95 % bootstrap interval
over test clips (:func:`pipeline.evaluation.stats.clip_interval`); the best probe's ``metrics`` hold
every metric of the kind with the same intervals (multi-label: ROC-AUC, PR-AUC and each tag's
ROC-AUC; single-label: accuracy and macro-F1; :mod:`pipeline.evaluation.metric_intervals`). The reported probe (``best``) is the family whose chosen
configuration scores higher on validation. ``--seed K`` seeds the MLP (and the random network of
``--random-init``); the embedding model is ``models/TASK/MODEL/seedK`` when that exists, else
the model given (its seed is recorded as ``model_seed``).

Writes ``metrics/probes/<dataset>/<representation>/seed<k>/probe.json`` and ``scores.npz``
(test labels and the best probe's scores, for intervals over seeds) and logs one MLflow run
per probe in the experiment ``probes`` (tag ``musicrep.kind=probe``; the embedding model and its
card hash as params).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.core.io_utils import atomic_path, write_json
from pipeline.core.lazy import lazy
from pipeline.core.locks import stage_lock
from pipeline.core.paths import Layout, probe_slug, seed_dir
from pipeline.core.task_kinds import MULTILABEL, PRIMARY_METRIC, SINGLE, kind_of
from pipeline.data.shards import SegmentStore
from pipeline.data.split_checks import require_split
from pipeline.evaluation.metric_intervals import as_json, metric_intervals
from pipeline.evaluation.probe_embeddings import cached_embeddings, model_key, random_init_like
from pipeline.evaluation.stats import clip_interval, metric_on, seed_summary
from pipeline.inference.predict import resolve_model_dir
from pipeline.models.checkpoint import load_model, read_card
from pipeline.models.inference import label_matrix
from pipeline.models.runtime import resolve_runtime
from pipeline.tracking import runs as tracking

log = logging.getLogger(__name__)

mlflow_entities = lazy("mlflow.entities")  # after quiet_mlflow_env(), as every MLflow import (pipeline.tracking.runs)

LINEAR_C = (0.01, 0.1, 1.0, 10.0)
MLP_HIDDEN = 128
MLP_ALPHA = (1e-4, 1e-2)
EXPERIMENT = "probes"
RANDOM_SUFFIX = " (random init)"
TRANSFER_NOTE = (
    "`musicrep probe DATASET --model TASK/MODEL`: the model trained on TASK, frozen; each clip of DATASET is the "
    "mean of its evaluation chunks' pooled embeddings; a linear and an MLP probe are trained on DATASET's train "
    "split and the one better on its val split is scored on its test split. Cells: mean +- std over probe seeds "
    "[95 % bootstrap interval over test clips of the seed-averaged probe]. `(random init)`: the same architecture "
    "with random weights, the baseline a learned representation must beat."
)


@dataclass(frozen=True)
class Representation:
    """What is probed: ``name`` (``TASK/MODEL``, plus `` (random init)``), its model folder, weights key."""

    name: str
    model_dir: Path
    key: str
    sha256: str
    random_init: bool
    model_seed: int | None

    @property
    def slug(self) -> str:
        """Folder name: ``TASK__MODEL`` (``__random-init``), :func:`pipeline.core.paths.probe_slug`."""
        return probe_slug(self.name.removesuffix(RANDOM_SUFFIX), self.random_init)


def _candidates(kind: str, seed: int) -> list[tuple[str, dict[str, Any], Any]]:
    out = []
    for c in LINEAR_C:
        lr = LogisticRegression(C=c, max_iter=2000)
        out.append(("linear", {"C": c}, make_pipeline(StandardScaler(), OneVsRestClassifier(lr) if kind == MULTILABEL else lr)))
    for alpha in MLP_ALPHA:
        mlp = MLPClassifier((MLP_HIDDEN,), alpha=alpha, max_iter=500, random_state=seed)
        out.append(("mlp", {"alpha": alpha, "hidden": MLP_HIDDEN}, make_pipeline(StandardScaler(), mlp)))
    return out


def _scores(estimator, x: np.ndarray, n_classes: int, kind: str) -> np.ndarray:
    """``(clips, n_classes)`` probabilities, columns in the dataset's label order."""
    proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
    if kind == MULTILABEL:
        return proba
    full = np.zeros((len(x), n_classes))
    full[:, estimator.classes_.astype(int)] = proba  # classes absent from train keep score 0
    return full


def fit_probes(
    kind: str, n_classes: int, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], seed: int = 0
) -> dict[str, tuple[dict[str, Any], float, Any]]:
    """Fit the grid on ``train``, keep each family's best on ``val``: ``{family: (hyper, val metric, estimator)}``."""
    best: dict[str, tuple[dict[str, Any], float, Any]] = {}
    for family, hyper, est in _candidates(kind, seed):
        with warnings.catch_warnings():  # convergence warnings of the small grid; constant labels in OvR
            warnings.simplefilter("ignore")
            est.fit(*train)
            value = float(metric_on(kind, val[1], _scores(est, val[0], n_classes, kind), np.arange(len(val[1]))))
        if family not in best or value > best[family][1]:
            best[family] = (hyper, value, est)
    return best


def scores_digest(scores: np.ndarray) -> str:
    """SHA-256 of the best probe's test scores as saved (float32): equal digests = the same run."""

    return hashlib.sha256(np.ascontiguousarray(scores, dtype=np.float32).tobytes()).hexdigest()


def distinct_seeds(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The probe runs of one (representation, dataset) with runs identical to an earlier seed's left out, and
    a note naming the seeds collapsed (``""`` when every seed differs).

    Identical: the same test scores (``scores_sha256``, or the saved ``scores.npz`` of older records). A
    linear probe is deterministic, so its seeds differ only when the embedding model does
    (``models/TASK/MODEL/seedK``); three identical runs are one measurement, not a spread of 0.
    """
    kept: list[dict[str, Any]] = []
    keys: list[str] = []
    for r in records:
        key = r.get("scores_sha256")
        if key is None and isinstance(r.get("_scores"), Path) and r["_scores"].exists():
            key = scores_digest(np.load(r["_scores"])["scores"])
        if key is not None and key in keys:
            continue
        keys.append(key if key is not None else f"seed{r['seed']}")
        kept.append(r)
    if len(kept) == len(records):
        return kept, ""
    seeds = ", ".join(str(r["seed"]) for r in records)
    why = "deterministic probe on the same embeddings" if all(r.get("best") == "linear" for r in records) else "identical"
    return kept, f"seeds {seeds} gave {len(kept)} distinct result{'s' if len(kept) > 1 else ''}: {why}"


def resolve_representation(spec: str, layout: Layout, seed: int, random_init: bool) -> Representation:
    """The packaged model of ``--model`` (``models/TASK/MODEL/seed<seed>`` when it exists) as a :class:`Representation`."""

    own_seed = layout.root / "models" / spec / seed_dir(seed)
    model_dir = own_seed if (own_seed / "model.json").exists() else resolve_model_dir(spec, layout.root)
    card = read_card(model_dir)
    meta = card.get("metadata", {})
    name = f"{meta.get('task', model_dir.parent.parent.name)}/{meta.get('model_name', card['config']['variant'])}"
    model_seed = int(model_dir.name[4:]) if model_dir.name.startswith("seed") and model_dir.name[4:].isdigit() else None
    return Representation(
        name + (RANDOM_SUFFIX if random_init else ""),
        model_dir,
        model_key(card, seed if random_init else None),
        str(card.get("sha256", "")),
        random_init,
        model_seed,
    )


def run_probe(
    dataset: str,
    model: str,
    params,
    layout: Layout,
    *,
    seed: int = 0,
    random_init: bool = False,
    layer: str = "pooled",
    track: bool = True,
) -> dict[str, Any]:
    """Probe the embeddings of ``model`` on ``dataset``; write and return the result (module docstring).

    Returns:
        ``{"dataset", "representation", "seed", "metric", "value", "ci_low", "ci_high", "best",
        "linear": {...}, "mlp": {...}, ...}``; each family's entry holds its ``hyper``,
        ``val``, ``value``, ``ci_low`` and ``ci_high``.
    """

    rep = resolve_representation(model, layout, seed, random_init)
    holder = f"musicrep probe {dataset} --model {model} --seed {seed}"
    with stage_lock("probe", dataset, rep.slug, seed, root=layout.root, holder=holder):  # one writer per output folder
        return _probe(rep, dataset, params, layout, seed=seed, layer=layer, track=track)


def _probe(rep: Representation, dataset: str, params, layout: Layout, *, seed: int, layer: str, track: bool) -> dict[str, Any]:
    """:func:`run_probe` once the representation is resolved and its output folder locked."""

    random_init = rep.random_init
    store = SegmentStore(layout.segments(dataset))
    splits = {split: store.split(split) for split in ("train", "val", "test")}
    for split, rows in splits.items():  # degenerate data refused before any embedding or fitting
        require_split(rows, dataset, split, store.multilabel, fit=split == "train")
    net, _ = load_model(rep.model_dir)
    if random_init:
        net = random_init_like(net, seed)
    net.to(resolve_runtime(params).device).eval()
    emb = cached_embeddings(
        net, rep.key, dataset, layout, n_chunks=params.evaluate.n_chunks, layer=layer, batch_size=params.runtime.eval_batch_size
    )
    kind = kind_of(store.multilabel)
    metric = PRIMARY_METRIC[kind]
    parts = {}
    for split, rows in splits.items():
        parts[split] = (emb.rows(rows["clip_id"].astype(str)), label_matrix(rows["labels"], store.labels, store.multilabel))
    fitted = fit_probes(kind, len(store.labels), parts["train"], parts["val"], seed)
    x_test, y_test = parts["test"]
    result: dict[str, Any] = {
        "dataset": dataset,
        "representation": rep.name,
        "model_dir": str(rep.model_dir),
        "model_sha256": rep.sha256,
        "model_seed": rep.model_seed,
        "random_init": random_init,
        "seed": seed,
        "layer": layer,
        "metric": metric,
        "embedding_dim": int(emb.vectors.shape[1]),
        "n_train": len(parts["train"][1]),
        "n_val": len(parts["val"][1]),
        "n_test": len(y_test),
    }
    test_scores = {}
    for family, (hyper, val_value, est) in fitted.items():
        test_scores[family] = _scores(est, x_test, len(store.labels), kind)
        ci = clip_interval(kind, y_test, [test_scores[family]])
        result[family] = {"hyper": hyper, "val": val_value, "value": ci.value, "ci_low": ci.low, "ci_high": ci.high}
    best = max(fitted, key=lambda f: fitted[f][1])
    result.update(best=best, value=result[best]["value"], ci_low=result[best]["ci_low"], ci_high=result[best]["ci_high"])
    result["metrics"] = as_json(metric_intervals(kind, y_test, test_scores[best], store.labels))
    result["probe_deterministic"] = best == "linear"  # lbfgs: other seeds change it only through the embeddings
    result["scores_sha256"] = scores_digest(test_scores[best])
    out = layout.probe(dataset, rep.slug, seed)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "scores.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, y=y_test, scores=test_scores[best].astype(np.float32))
    write_json(out / "probe.json", result)
    if track:
        _log_run(result, layout)
    log.info(
        "probe %s -> %s seed%d: %s %s %.4f [%.4f, %.4f] (val %.4f)",
        rep.name,
        dataset,
        seed,
        best,
        metric,
        result["value"],
        result["ci_low"],
        result["ci_high"],
        result[best]["val"],
    )
    return result


def _log_run(result: dict[str, Any], layout: Layout) -> None:
    """One MLflow run per probe in the ``probes`` experiment, tagged ``musicrep.kind=probe``."""

    c = tracking.client(layout.root)
    run = c.create_run(
        tracking.experiment_id(c, EXPERIMENT, layout.root),
        run_name=f"{result['representation']} -> {result['dataset']}",
        tags={
            "musicrep.kind": "probe",
            "dataset": result["dataset"],
            "representation": result["representation"],
            "seed": str(result["seed"]),
            "random_init": str(result["random_init"]).lower(),
            **tracking.environment_tags(),
        },
    )
    params = {
        "embedding_model": result["model_dir"],
        "embedding_model_sha256": result["model_sha256"],
        "layer": result["layer"],
        "best_probe": result["best"],
        **{f"{f}.{k}": v for f in ("linear", "mlp") for k, v in result[f]["hyper"].items()},
    }
    metrics = {f"test/{result['metric']}": result["value"], "test/ci_low": result["ci_low"], "test/ci_high": result["ci_high"]}
    for family in ("linear", "mlp"):
        metrics.update({f"{family}/val": result[family]["val"], f"{family}/test": result[family]["value"]})
    for name, v in result.get("metrics", {}).items():
        if name != "per_tag":
            metrics.update({f"test/{name}": v["value"], f"test/{name}_ci_low": v["ci_low"], f"test/{name}_ci_high": v["ci_high"]})
    c.log_batch(
        run.info.run_id,
        metrics=[mlflow_entities.Metric(k, float(v), 0, 0) for k, v in metrics.items() if v == v],
        params=[mlflow_entities.Param(k, str(v)) for k, v in params.items()],
    )
    c.set_terminated(run.info.run_id, "FINISHED")


def transfer_results(layout: Layout) -> list[dict[str, Any]]:
    """Every ``probe.json`` under ``metrics/probes/``, with the path of its ``scores.npz``."""
    out = []
    for path in sorted((layout.root / "metrics" / "probes").glob("*/*/seed*/probe.json")):
        record = json.loads(path.read_text())
        record["_scores"] = path.with_name("scores.npz")
        out.append(record)
    return out


def transfer_table(layout: Layout):
    """Rows = representations, one row per (representation, dataset): mean ± std over probe seeds and
    the 95 % bootstrap interval over test clips of the seed-averaged probe (:func:`pipeline.evaluation.stats.clip_interval`).

    Seeds whose runs are identical count once (:func:`distinct_seeds`; ``note`` says which), so a
    deterministic probe never shows a spread of 0.

    Returns:
        DataFrame with ``representation, dataset, metric, value, std, n_seeds, ci_low, ci_high, note``
        (empty when nothing was probed).
    """

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in transfer_results(layout):
        groups.setdefault((record["representation"], record["dataset"]), []).append(record)
    rows = []
    for (rep, dataset), all_records in sorted(groups.items()):
        records, note = distinct_seeds(all_records)
        mean, std, n = seed_summary([r["value"] for r in records])
        kind = MULTILABEL if records[0]["metric"] == PRIMARY_METRIC[MULTILABEL] else SINGLE
        files = [np.load(r["_scores"]) for r in records if r["_scores"].exists()]
        ci = clip_interval(kind, files[0]["y"], [f["scores"] for f in files]) if files else None
        rows.append(
            {
                "representation": rep,
                "dataset": dataset,
                "metric": records[0]["metric"],
                "value": mean,
                "std": std,
                "n_seeds": n,
                "ci_low": ci.low if ci else float("nan"),
                "ci_high": ci.high if ci else float("nan"),
                "note": note,
            }
        )
    columns = ["representation", "dataset", "metric", "value", "std", "n_seeds", "ci_low", "ci_high", "note"]
    return pd.DataFrame(rows, columns=columns)


def transfer_matrix(table, digits: int = 3):
    """The transfer table as a grid: rows = representations (random-init rows last), columns = datasets,
    cells ``mean ± std [ci_low, ci_high]`` (``± std`` only with several distinct seeds; collapsed seeds noted)."""

    if table.empty:
        return pd.DataFrame()

    def cell(r) -> str:
        spread = f" ± {r['std']:.{digits}f}" if r["n_seeds"] > 1 else ""
        note = f" ({r['note']})" if r.get("note") else ""
        return f"{r['value']:.{digits}f}{spread} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]{note}"

    grid = table.assign(cell=table.apply(cell, axis=1)).pivot(index="representation", columns="dataset", values="cell").fillna("")
    order = sorted(grid.index, key=lambda name: (name.endswith(RANDOM_SUFFIX), name))
    metrics = table.groupby("dataset")["metric"].first()
    grid = grid.loc[order]
    grid.columns = [f"{d} ({metrics[d]})" for d in grid.columns]
    grid.index.name = "representation"
    return grid.reset_index()
