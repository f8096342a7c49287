"""Storage: the database engine and the tables of the gateway and the backend."""

from dynaseal.storage.database import Database, normalize_database_url

__all__ = ["Database", "normalize_database_url"]
