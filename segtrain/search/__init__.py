"""Many models in succession: hyperparameter sweeps on Optuna and cross-validation, each run isolated and resumable."""
