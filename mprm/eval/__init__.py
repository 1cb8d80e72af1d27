"""Evaluation: VisualProcessBench metrics, threshold choice, scoring, checkpoint curves, Best-of-N.

Importing this package imports no torch: the metric modules (``metrics``, ``thresholds``,
``tables``, ``predictions``, ``bon`` aggregation) are numpy only, and the modules that score with a
model (``runner``) import torch themselves. See docs/evaluation.md.
"""
