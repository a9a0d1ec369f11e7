"""atml: five classic deep-learning experiments as measured, reproducible runs."""

__version__ = "0.1.0"
