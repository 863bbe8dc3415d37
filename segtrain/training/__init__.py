"""Training one segment: the script, its data, segtrain's Keras callback, boundaries and signals."""
