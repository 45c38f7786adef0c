"""Collection rules for ``pytest`` run from the repository root.

``--doctest-modules`` imports every module of the package; ``skvae.dask``
needs the ``[dask]`` extra, so its modules are skipped when dask or
distributed is missing (tests/test_dask.py skips itself likewise).
"""

import importlib.util

collect_ignore_glob = []
if any(importlib.util.find_spec(m) is None for m in ("dask", "distributed")):
    collect_ignore_glob.append("skvae/dask/*")
