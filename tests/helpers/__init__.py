"""Shared test helpers (no tests here): servers, the Slack stub, training and gate builders.

Importable as ``helpers`` because ``pythonpath = ["tests"]`` in pyproject's pytest options.
"""
