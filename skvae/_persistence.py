"""Saved models: the skvae version they were saved with, checked on load.

scikit-learn stores its version in the pickled state of its own estimators
and warns (``InconsistentVersionWarning``) when a model is loaded by another
version, but only for classes in the ``sklearn`` package. :class:`VersionedStateMixin`
does the same for skvae's estimators, with :class:`SkvaeVersionWarning`.

It works for every format that goes through ``__getstate__`` and
``__setstate__``: :mod:`pickle`, :mod:`joblib` and ``skops.io``. The version is
kept as a plain string, so a saved model still holds only NumPy arrays and
plain Python values, and ``skops.io.get_untrusted_types`` lists only the
estimator's own class.
"""

import warnings

from sklearn.exceptions import InconsistentVersionWarning

#: Key of the skvae version in the saved state.
VERSION_KEY = "_skvae_version"

#: Version reported for a saved state without :data:`VERSION_KEY`.
UNKNOWN_VERSION = "unknown (saved before skvae recorded its version)"


def _current_version():
    # imported here: skvae/__init__.py defines __version__ after importing
    # the estimators, which import this module
    from . import __version__

    return __version__


class SkvaeVersionWarning(InconsistentVersionWarning):
    """Warning raised when a model saved by another skvae version is loaded.

    A subclass of scikit-learn's
    :class:`~sklearn.exceptions.InconsistentVersionWarning`, so a filter set
    on that warning (to make it an error in production, say) catches this one
    too.

    Parameters
    ----------
    estimator_name : str
        Class name of the loaded estimator.
    current_skvae_version : str
        Version of skvae loading the model.
    original_skvae_version : str
        Version of skvae that saved it.

    Examples
    --------
    >>> import pickle, warnings
    >>> from skvae import SkvaeVersionWarning, VAETransformer
    >>> state = VAETransformer().__getstate__()
    >>> state["_skvae_version"] = "0.0.1"
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     VAETransformer().__setstate__(state)
    >>> caught[0].category is SkvaeVersionWarning
    True
    """

    def __init__(
        self, *, estimator_name, current_skvae_version, original_skvae_version
    ):
        super().__init__(
            estimator_name=estimator_name,
            current_sklearn_version=current_skvae_version,
            original_sklearn_version=original_skvae_version,
        )
        self.current_skvae_version = current_skvae_version
        self.original_skvae_version = original_skvae_version

    def __str__(self):
        return (
            f"Loading {self.estimator_name} saved by skvae "
            f"{self.original_skvae_version} with skvae "
            f"{self.current_skvae_version}. The fitted state may not mean the "
            "same in this version: results may differ or be invalid. Refit the "
            "model with this version, or load it with the version that saved it."
        )


class VersionedStateMixin:
    """Records the skvae version in the saved state and checks it on load.

    Put before ``BaseEstimator`` among the bases: the state it adds to is the
    one ``BaseEstimator.__getstate__`` returns.
    """

    def __getstate__(self):
        state = super().__getstate__()
        return {**state, VERSION_KEY: _current_version()}

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop(VERSION_KEY, UNKNOWN_VERSION)
        current = _current_version()
        if saved != current:
            warnings.warn(
                SkvaeVersionWarning(
                    estimator_name=type(self).__name__,
                    current_skvae_version=current,
                    original_skvae_version=saved,
                ),
                stacklevel=2,
            )
        super().__setstate__(state)
