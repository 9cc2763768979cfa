"""musicrep: front-end/back-end audio representation learning pipeline.

The import package is ``pipeline``; the distribution and command are ``musicrep``.
"""

__version__ = "0.1.0"
SAMPLE_RATE = 16_000
