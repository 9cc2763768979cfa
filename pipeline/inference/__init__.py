"""Inference on the user's audio: predict, embed and their writers."""
