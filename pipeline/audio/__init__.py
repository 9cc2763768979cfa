"""Audio: decoding and resampling, streaming long files, chunking clips into model inputs."""
