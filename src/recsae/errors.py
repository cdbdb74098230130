"""The one base class of errors caused by the user's input (config, data files, archives,
network) rather than by a bug: the ``recsae`` command prints their message as one line and exits
with status 2 (``recsae --debug`` shows the traceback)."""

from __future__ import annotations


class UserError(Exception):
    """Bad config, bad or changed data, a checksum mismatch or a network failure; the message
    names the file and line, or the config key, and says what to change."""


class DataError(UserError, ValueError):
    """Raw or prepared data that cannot give a usable dataset (empty after filtering, no user
    to evaluate, a required file missing); the message names the dataset and the setting."""
