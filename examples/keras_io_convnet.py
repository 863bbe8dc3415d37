"""A script in the style of keras.io's "Simple MNIST convnet" example, unchanged but for its data.

keras.io's example downloads MNIST; this one makes 28x28 digit-like images itself so that it runs offline.

    segtrain run examples/keras_io_convnet.py --segment 2 --seed 0
"""

import keras
import numpy as np
from keras import layers

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# The data, split between train and test sets (synthetic: one bright square per class)
rng = np.random.default_rng(0)
y_all = rng.integers(0, num_classes, size=6000)
x_all = rng.normal(0.0, 0.1, size=(6000, 28, 28)).astype("float32")
for i, c in enumerate(y_all):
    r, col = divmod(int(c), 5)
    x_all[i, 4 + 12 * r : 12 + 12 * r, 2 + 5 * col : 6 + 5 * col] += 1.0
x_train, y_train, x_test, y_test = x_all[:5000], y_all[:5000], x_all[5000:], y_all[5000:]

# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)

# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
model.summary()

batch_size = 128
epochs = 6

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
