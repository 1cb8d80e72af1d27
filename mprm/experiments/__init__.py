"""Experiments on synthetic data, on top of the training and evaluation libraries: the demo
(``mprm demo``), the tiny backbone's domain pretraining (``mprm tiny --pretrain``) and the CPU-scale
data-efficiency study (``benchmarks/data_efficiency.py``).

This is the top library layer (docs/design.md): it may import ``mprm.train`` and ``mprm.eval``;
nothing below it imports it.
"""
