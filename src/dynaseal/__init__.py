"""Dynaseal: short-lived signed dynamic keys for on-device LLM agents.

The package is split by part:

* :mod:`dynaseal.keys`    - the dynamic-key format (pure functions, no I/O)
* :mod:`dynaseal.gateway` - the OpenAI-compatible gateway that enforces keys
* :mod:`dynaseal.backend` - the reference business backend that mints keys
* :mod:`dynaseal.client`  - the device side: log in, get a key, use the OpenAI SDK
* :mod:`dynaseal.storage` - database engine and tables
* :mod:`dynaseal.cli`     - the ``dynaseal`` command
"""

__version__ = "0.1.0"
