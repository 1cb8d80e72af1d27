"""The paper-reproduction kit (issue 6): the experiment grid, the published numbers, the report.

Nothing here imports torch: the grid, the sweep commands and ``mprm report`` run on a laptop
against run folders copied back from a cluster.
"""
