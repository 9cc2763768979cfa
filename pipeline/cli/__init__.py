"""The ``musicrep`` command."""
