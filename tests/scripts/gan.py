"""A GAN written as keras.io writes them: its own compile(d_optimizer, g_optimizer, loss_fn) and train_step."""

import keras
import numpy as np
import tensorflow as tf

LATENT = 4
fit_kwargs = {"batch_size": 16}


@keras.saving.register_keras_serializable(package="segtrain_tests")
class GAN(keras.Model):
    def __init__(self, discriminator=None, generator=None, latent_dim=LATENT, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = discriminator or keras.Sequential(
            [keras.Input(shape=(2,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)],
            name="discriminator",
        )
        self.generator = generator or keras.Sequential(
            [keras.Input(shape=(latent_dim,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)],
            name="generator",
        )
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def call(self, x):
        return self.discriminator(x)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def train_step(self, real):
        if isinstance(real, tuple):
            real = real[0]
        batch = tf.shape(real)[0]
        noise = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        fake = self.generator(noise)
        both = tf.concat([fake, real], axis=0)
        labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(both))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights, strict=True))
        noise = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(tf.zeros((batch, 1)), self.discriminator(self.generator(noise)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights, strict=True))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    def get_config(self):
        return {"latent_dim": self.latent_dim, **super().get_config()}


def load_data():
    rng = np.random.default_rng(5)
    x = rng.normal(loc=(2.0, -1.0), scale=0.3, size=(64, 2)).astype("float32")
    return x, None


def build_model():
    model = GAN()
    model.compile(
        d_optimizer=keras.optimizers.Adam(0.003),
        g_optimizer=keras.optimizers.Adam(0.003),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    model.build((None, 2))  # the h5 format, like Keras' save_weights, needs a built model
    return model
