"""Deployment layer: export a Keras actor to .tflite with its contract; a LiteRT runtime that needs no TensorFlow."""
