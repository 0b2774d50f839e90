"""sweeper: fair, noise-aware sweeps of segmentation-models-pytorch models."""
#: The one place of the version; the package metadata (``sweeper --version``) is built from it.
__version__ = "0.1.0"
