"""dict_io.py on JAX, chosen by the script itself before it imports Keras (as Keras' own examples do)."""

import os

os.environ["KERAS_BACKEND"] = "jax"

from dict_io import build_model, fit_kwargs, load_data  # noqa: F401
