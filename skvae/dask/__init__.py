"""skvae on dask: fit and apply the estimators to data in blocks on a cluster.

Install with ``pip install "skvae[dask]"``. ``import skvae`` never imports
this module, nor dask.

- :class:`DaskAutoencoderTransformer`, :class:`DaskVAETransformer`,
  :class:`DaskVAEAnomalyDetector`, :class:`DaskVAEImputer`: the parameters
  of the in-memory estimators plus ``client``; ``fit`` takes a dask array
  or DataFrame (categorical columns and missing cells included), the other
  methods return dask collections, and ``to_local()`` returns the fitted
  in-memory estimator.
- :data:`WORKER_CONFIG`: the dask configuration skvae needs on its workers
  (no ``MALLOC_TRIM_THRESHOLD_``, single-threaded BLAS). Importing this
  module applies it to clusters started afterwards in the same process.
"""

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'skvae.dask needs dask and distributed: pip install "skvae[dask]"'
    ) from exc

from ._cluster import WORKER_CONFIG, apply_worker_config
from ._estimators import (
    DaskAutoencoderTransformer,
    DaskVAEAnomalyDetector,
    DaskVAEImputer,
    DaskVAETransformer,
)

apply_worker_config()

__all__ = [
    "WORKER_CONFIG",
    "DaskAutoencoderTransformer",
    "DaskVAEAnomalyDetector",
    "DaskVAEImputer",
    "DaskVAETransformer",
]
