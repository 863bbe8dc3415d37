"""A plain script that prints, on both streams: before fit, at each epoch's end (its own callback), after fit.

Under `segtrain run` its stdout lines must be segtrain's stdout, in order; its stderr lines segtrain's stderr.
"""

import sys

import keras
import numpy as np

print("printing: before fit")
print("printing: a note on stderr", file=sys.stderr)
x = np.linspace(-1, 1, 64, dtype="float32").reshape(32, 2)
y = x[:, :1] * 2
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
each_epoch = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(f"printing: epoch {epoch + 1}"))
model.fit(x, y, batch_size=8, epochs=6, callbacks=[each_epoch], verbose=0)
print("printing: after fit")
print("printing: done, on stderr", file=sys.stderr)
