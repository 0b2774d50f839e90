"""sweeper: fair, noise-aware sweeps of segmentation-models-pytorch models."""
__version__ = "0.1.0"
