"""Sweeps beyond one machine: the runs of ``compare`` as independent tasks on dask.distributed.

``pdbviz.sweep(...)`` (the function ``sweep`` of this package) runs every
float model and every (schedule, seed, model, dataset) run as a task, on a
LocalCluster by default or on any cluster a ``distributed.Client`` reaches,
writes each finished run to the results folder at once, resumes what an
earlier sweep finished, and returns the same ``Results`` as ``compare``.
Needs the optional extra: ``pip install "pdbviz[dask]"``.

Example::

    import pdbviz
    r = pdbviz.sweep("digits", schedules=["float", "2", "halving", "alloc:1.5"], seeds=[0, 1, 2],
                     out="sweep-digits")                                    # LocalCluster, one worker per core
    r = pdbviz.sweep(..., out="sweep-digits", client="tcp://10.0.0.5:8786")  # a cluster's scheduler
"""

from .cluster import DASK_EXTRA
from .core import sweep
from .plan import RunRecord
from .runner import SchedulerLostError
from .store import RunStore, run_key

__all__ = ["DASK_EXTRA", "RunRecord", "RunStore", "SchedulerLostError", "run_key", "sweep"]
