"""skvae: scikit-learn compatible autoencoders and variational autoencoders.

Four estimators, written on NumPy and SciPy only:

- :class:`AutoencoderTransformer`, a deterministic autoencoder;
- :class:`VAETransformer`, a variational autoencoder with an importance-weighted
  log-likelihood estimate in ``score_samples``;
- :class:`VAEAnomalyDetector`, an outlier detector built on the VAE likelihood;
- :class:`VAEImputer`, a missing-value imputer built on the same VAE.

All of them take pandas DataFrames with categorical columns and missing
values, and sparse matrices.
"""

from ._anomaly import VAEAnomalyDetector
from ._autoencoder import AutoencoderTransformer
from ._base import TrainingDivergedError
from ._imputer import VAEImputer
from ._persistence import SkvaeVersionWarning
from ._vae import VAETransformer

__version__ = "0.1.0"

__all__ = [
    "AutoencoderTransformer",
    "SkvaeVersionWarning",
    "TrainingDivergedError",
    "VAEAnomalyDetector",
    "VAEImputer",
    "VAETransformer",
    "__version__",
]
