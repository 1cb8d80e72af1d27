"""Evaluation: VisualProcessBench metrics, threshold choice, scoring, checkpoint curves, Best-of-N.

Importing this package imports no torch: the metric modules (``metrics``, ``thresholds``,
``tables``, ``predictions``, ``bon`` aggregation), the settings, items and file helpers are numpy
or pure Python, and the code that scores with a model (``runner``, ``loading``) imports torch
inside the functions that need it. The library is driven by one :class:`~mprm.eval.settings.EvalSettings`
and an explicitly passed model (:class:`~mprm.eval.loading.LazyModel`). See docs/evaluation.md.
"""
