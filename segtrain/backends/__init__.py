"""The Keras backends behind one Protocol: TensorFlow, JAX and PyTorch."""
