"""Data layer: records, readers, validation, selection, synthesis. Imports no torch."""

from mprm.data.records import BenchItem, Rollout, Step

__all__ = ["BenchItem", "Rollout", "Step"]
