"""mprm: training-data-efficient multimodal process reward models.

The package is split by concern (see docs/design.md):
``mprm.data`` (records, readers, validation, selection; no torch), ``mprm.models`` (backbones,
the step reward head, prompt formatting, tiny test models), ``mprm.train`` (the loop and the one
distributed layer), ``mprm.eval`` (scoring, metrics, Best-of-N; metrics need no torch).
"""

__version__ = "0.1.0"
