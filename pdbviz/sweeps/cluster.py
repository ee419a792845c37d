"""The dask.distributed side of a sweep: importing it, and the Client a sweep runs on.

dask is optional (``pip install "pdbviz[dask]"``) and imported only here,
inside functions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: the message when dask.distributed is missing, naming the extra that brings it
DASK_EXTRA = 'pdbviz.sweep needs dask.distributed; install it with: pip install "pdbviz[dask]"'
#: a worker resource of one unit per worker: runs that ask for it run one at a time per worker
RUN_SLOT = "pdbviz_run"


def distributed():
    """The ``distributed`` module, or an ImportError that names the ``pdbviz[dask]`` extra."""
    try:
        import dask  # noqa: F401 - dask itself, not only distributed, must be importable
        import distributed as dd
    except ImportError as err:
        raise ImportError(f"{DASK_EXTRA} ({err})") from err
    return dd


def local_cores() -> int:
    """CPU cores this process may use (its affinity where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_workers(gpu: bool) -> int:
    """Workers of the LocalCluster a sweep starts: one per core (one process per GPU run on a GPU machine)."""
    return 1 if gpu else local_cores()


@contextlib.contextmanager
def connect(client, workers: int | None, gpu: bool, retries: int, timeout: float = 30.0) -> Iterator:
    """Yield a ``distributed.Client``: the one given, one connected to an address, or a new LocalCluster's.

    A LocalCluster (``client=None``) has ``workers`` processes of one thread
    each on 127.0.0.1 with one ``RUN_SLOT`` (and one ``GPU`` when ``gpu``)
    resource, so that each worker holds one run at a time, and gives up on a
    run whose worker died ``retries + 1`` times. What this
    function started, it closes; a Client that was passed in stays open.
    """
    dd = distributed()
    if client is None:
        import dask

        # one run per worker at a time: a free worker never waits behind a long run, and a dying worker takes
        # only its own run with it (dask assigns tasks with dependencies to workers eagerly otherwise)
        resources = {RUN_SLOT: 1, **({"GPU": 1} if gpu else {})}
        with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                              "distributed.scheduler.worker-saturation": 1.0}):
            cluster = dd.LocalCluster(n_workers=workers or default_workers(gpu), threads_per_worker=1,
                                      processes=True, host="127.0.0.1", dashboard_address=":0",
                                      resources=resources)
        try:
            with dd.Client(cluster) as c:
                c.wait_for_workers(len(cluster.workers), timeout=timeout * 4)  # all of them, with their run slots
                yield c
        finally:
            cluster.close()
    elif isinstance(client, str):
        try:
            c = dd.Client(client, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise ConnectionError(f"client: no dask scheduler answered at {client!r} within {timeout:g} s "
                                  f"({type(err).__name__}: {err})") from None
        try:
            yield c
        finally:
            c.close()
    elif isinstance(client, dd.Client):
        yield client
    else:
        raise TypeError(f"client must be None (a local cluster), a scheduler address such as "
                        f"'tcp://10.0.0.5:8786', or a distributed.Client, got {type(client).__name__}")


def run_resources(client, gpu: bool, own: bool = False) -> dict | None:
    """What each run asks of its worker: a ``GPU`` when ``gpu``, and a ``RUN_SLOT`` on the LocalCluster that
    ``connect`` started (``own``) or when every worker of another cluster has one
    (``dask worker ADDRESS --resources "pdbviz_run=1"``)."""
    workers = client.scheduler_info().get("workers", {}).values()
    has = [w.get("resources", {}) for w in workers]
    if gpu and has and not any(r.get("GPU") for r in has):
        raise ValueError("device asks every run for a GPU, but no worker of this cluster advertises a 'GPU' "
                         "resource; start the workers with: dask worker ADDRESS --resources GPU=1")
    wanted = {"GPU": 1} if gpu else {}
    if own or (has and all(r.get(RUN_SLOT) for r in has)):
        wanted[RUN_SLOT] = 1
    return wanted or None
