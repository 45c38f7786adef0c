"""Worker set-up: one BLAS thread per worker thread, glibc's malloc defaults.

Two settings of a dask cluster cost skvae dearly (measured in issue 12):

- ``MALLOC_TRIM_THRESHOLD_``: distributed's nannies set it to 65536 in the
  environment of the worker processes they start (the
  ``distributed.nanny.pre-spawn-environ`` configuration). Setting the trim
  threshold at all switches off glibc's dynamic mmap threshold, so every
  large temporary array of a forward pass is mapped and unmapped afresh:
  ``score_samples`` ran 1.7x slower (9.4 against 5.4 CPU-s on 1M rows).
  The variable is read when a process starts, so it must be left out of
  the workers' environment *before* they are spawned: distributed's
  documented way is to set that configuration key to None.
- BLAS threads: a worker runs one task per thread; BLAS threads on top of
  that oversubscribe the cores (one product ran 100x slower under load).

:data:`WORKER_CONFIG` holds both settings; importing ``skvae.dask``
applies it with ``dask.config.set``, so clusters started afterwards in the
same process (``LocalCluster``, ``Client()``) get it. Each estimator, when
it first uses a client, also installs a worker plugin that limits BLAS to
one thread in every current and future worker (whatever their
environment), and warns when the workers already run with a trim
threshold (clusters started before the import, or elsewhere).
"""

import os
import warnings

from distributed.diagnostics.plugin import WorkerPlugin

#: dask configuration for clusters that run skvae: no ``MALLOC_TRIM_THRESHOLD_``
#: (None removes a variable from ``pre-spawn-environ``) and single-threaded
#: BLAS in the worker processes.
WORKER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": 1,
    "distributed.nanny.pre-spawn-environ.OPENBLAS_NUM_THREADS": 1,
    "distributed.nanny.pre-spawn-environ.MKL_NUM_THREADS": 1,
}

_PLUGIN_NAME = "skvae-worker-setup"

#: (scheduler address, client id) pairs already set up in this process
_READY = set()


def apply_worker_config():
    """Set :data:`WORKER_CONFIG` in dask's configuration (for new clusters)."""
    import dask

    dask.config.set(WORKER_CONFIG)


def _limit_blas():
    """In a worker: BLAS on one thread for the rest of the process."""
    from threadpoolctl import threadpool_limits

    # kept referenced by the worker plugin: the limit holds until restored
    return threadpool_limits(limits=1, user_api="blas")


def _malloc_trim_threshold():
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


class SkvaeWorkerSetup(WorkerPlugin):
    """Worker plugin: single-threaded BLAS on every worker, present and future."""

    name = _PLUGIN_NAME

    def setup(self, worker):
        self._limits = _limit_blas()

    def teardown(self, worker):
        pass


def prepare_workers(client):
    """Set up the workers of ``client`` for skvae, once per client."""
    key = (client.scheduler.address, client.id)
    if key in _READY:
        return
    client.register_plugin(SkvaeWorkerSetup(), name=_PLUGIN_NAME)
    trims = {v for v in client.run(_malloc_trim_threshold).values() if v is not None}
    if trims:
        warnings.warn(
            "The dask workers run with MALLOC_TRIM_THRESHOLD_="
            f"{', '.join(sorted(trims))}, which makes skvae's inference up to "
            "1.7x slower. Start the cluster after `import skvae.dask` (which "
            "sets dask's configuration), or with "
            "dask.config.set(skvae.dask.WORKER_CONFIG), or unset the variable "
            "in the workers' environment.",
            RuntimeWarning,
            stacklevel=3,
        )
    _READY.add(key)
