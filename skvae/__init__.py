"""skvae: scikit-learn compatible autoencoders and variational autoencoders.

Three estimators, written on NumPy and SciPy only:

- :class:`AutoencoderTransformer`, a deterministic autoencoder;
- :class:`VAETransformer`, a variational autoencoder with an importance-weighted
  log-likelihood estimate in ``score_samples``;
- :class:`VAEAnomalyDetector`, an outlier detector built on the VAE likelihood.
"""

from ._anomaly import VAEAnomalyDetector
from ._autoencoder import AutoencoderTransformer
from ._base import TrainingDivergedError
from ._persistence import SkvaeVersionWarning
from ._vae import VAETransformer

__version__ = "0.1.0"

__all__ = [
    "AutoencoderTransformer",
    "SkvaeVersionWarning",
    "TrainingDivergedError",
    "VAEAnomalyDetector",
    "VAETransformer",
    "__version__",
]
