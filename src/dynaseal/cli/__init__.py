"""The ``dynaseal`` command: run the gateway or the backend, chat as a device, or run the
whole round trip in one process with ``dynaseal demo``."""
