"""TF1 graph mode, the original form of the problem: every step adds ops to a graph that lives as long
as the process, so each step gets slower. Keras 3's fit cannot run with eager execution off, so the
script trains through segtrain's `train_epoch(model, data, epoch)`; segtrain still owns the loop, the
checkpoints, the boundaries and the telemetry. The Keras model holds the weights and the optimizer state
(what segtrain checkpoints); the TF1 graph computes the gradients.
"""

import numpy as np
import keras
import tensorflow as tf

GRAPH = tf.Graph()  # like TF1's default graph: it lives as long as the process
SESSION = tf.compat.v1.Session(graph=GRAPH)
BATCH = 64


def load_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 32)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(32, 1))) + 0.1 * rng.normal(size=(1024, 1))).astype("float32")
    return x, y


def build_model():
    model = keras.Sequential([keras.Input(shape=(32,)), keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def _gradients(weights, xb, yb):
    """The TF1 bug this workload reproduces: the ops are built anew at every step."""
    with GRAPH.as_default():
        w = [tf.compat.v1.placeholder(tf.float32, v.shape) for v in weights]
        xp = tf.compat.v1.placeholder(tf.float32, xb.shape)
        yp = tf.compat.v1.placeholder(tf.float32, yb.shape)
        h = tf.tanh(tf.matmul(xp, w[0]) + w[1])
        loss = tf.reduce_mean(tf.square(tf.matmul(h, w[2]) + w[3] - yp))
        grads = tf.gradients(loss, w)
        feed = {p: v for p, v in zip(w, weights)}
        feed.update({xp: xb, yp: yb})
        return SESSION.run([loss, grads], feed_dict=feed)


def train_epoch(model, data, epoch):
    x, y = data
    order = np.random.default_rng([0, epoch]).permutation(len(x))
    losses = []
    for start in range(0, len(x), BATCH):
        idx = order[start:start + BATCH]
        loss, grads = _gradients([v.numpy() for v in model.trainable_variables], x[idx], y[idx])
        model.optimizer.apply([tf.constant(g) for g in grads], model.trainable_variables)
        losses.append(loss)
    return {"loss": float(np.mean(losses)), "graph_ops": float(len(GRAPH.get_operations()))}
