"""Training (METHOD.md 6): the loop (loop.py), the one distributed layer (strategy.py), the batch
plan (sampler.py), data preparation (data.py), checkpoints, schedule, logging and evaluation.

Entry point: ``train.py``; in code, ``mprm.train.loop.train(config)``.
"""
