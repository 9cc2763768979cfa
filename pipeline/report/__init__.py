"""``report`` stage: ``reports/index.md``, ``reports/index.html`` (figures linked from
``reports/figures/``) and ``reports/results.csv`` for the model x task grid of ``params.grid``.

Contents, per task of the grid:

1. **Comparison table**: test metrics from ``metrics/<task>/<model>/eval.json`` (falling back
   to the model's MLflow run when the file is gone), trainable parameters, training time
   (total and per epoch), evaluation throughput (MLflow's ``test/seconds``), best epoch, the registry URI of the model.
   Stages that have not produced their files are shown as ``not run``.
2. **Robustness**: the task's metric-vs-SNR curves of all models
   (:func:`pipeline.robustness.plots.plot_task_curves`) and a relative-degradation table
   (:func:`pipeline.robustness.stage.robustness_summary`), when robustness files exist.
3. **Figures** (:mod:`pipeline.report.figures`): training curves; confusion matrices (single-label)
   or per-class ROC-AUC (multi-label); the learned harmonic filterbank of models with one;
   the self-attention map of one test clip for models with self-attention.
4. **Data and environment** behind each number: dataset coverage (``meta.json`` of the
   segments) and the environment of the training runs stated once (model cards and MLflow tags,
   :mod:`pipeline.report.environment`): device, versions, bf16 per model, then only the cells that differ.

Results on audio that is not recordings are labelled by where it comes from (the source's
``origin``): ``(synthetic)`` for the generated ``synth_*``, ``(rendered)`` for ``corpus_tags`` (real
scores through a soundfont); they test the pipeline and compare the architectures on such audio only.

The report is built in a temporary directory that then replaces ``reports/`` (no stale
figures, no half-written report). Figures are also logged to each model's MLflow run
(``figures/``), and every trained model is registered in the MLflow model registry
(:func:`pipeline.tracking.registry.register_models`, idempotent) unless ``register=False``.

One job per module: :mod:`~pipeline.report.collect` (files and MLflow runs of each cell),
:mod:`~pipeline.report.tables` (formatted table rows), :mod:`~pipeline.report.plots` (figures),
:mod:`~pipeline.report.render` (Markdown and HTML from the Jinja2 templates in ``templates/``:
``report.j2`` holds the sections, their order and prose), :mod:`~pipeline.report.build` (the
stage: gather the template's context, write, swap in). The package itself imports nothing, so that
importing one module (``pipeline.report.compare``) does not load the page's figures.
"""
