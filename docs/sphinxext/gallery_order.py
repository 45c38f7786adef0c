"""Reading order of the example gallery.

sphinx-gallery sorts examples by file name or size by default; we want them in
the order a new user would read them, simple models first.
"""

EXAMPLE_ORDER = [
    "plot_autoencoder_spiral.py",
    "plot_vae_clusters.py",
    "plot_compression.py",
    "plot_digit_interpolation.py",
    "plot_gridsearch_beta_latent.py",
    "plot_anomaly_detection.py",
    "plot_synthetic_data.py",
    "plot_synthetic_penguins.py",
    "plot_customer_segmentation.py",
    "plot_penguins_imputation.py",
]


class ExampleOrder:
    """Sort key that follows :data:`EXAMPLE_ORDER`; unknown files go last.

    sphinx-gallery instantiates the class with the gallery's source directory
    and calls it on each file name. It is referenced from ``conf.py`` by its
    dotted name so that the Sphinx configuration stays picklable.
    """

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        try:
            return (EXAMPLE_ORDER.index(filename), filename)
        except ValueError:
            return (len(EXAMPLE_ORDER), filename)

    def __repr__(self):
        return "ExampleOrder"
