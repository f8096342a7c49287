"""The reference business backend: logs end users in, mints their dynamic keys and
receives the gateway's usage callbacks."""

from dynaseal.backend.app import create_app
from dynaseal.backend.settings import BackendSettings

__all__ = ["BackendSettings", "create_app"]
