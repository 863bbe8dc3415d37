"""Training state on disk: atomic files, checkpoints (one class per format), model and callback state."""
