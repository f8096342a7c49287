"""Pieces both services share: settings, errors, passwords and login tokens."""
