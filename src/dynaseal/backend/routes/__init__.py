"""The backend's API, mounted at the root, under ``/v1`` and under ``/api/v1``."""

from fastapi import APIRouter

from dynaseal.backend.routes import keys, usage, users

api_router = APIRouter()
api_router.include_router(users.router)
api_router.include_router(keys.router)
api_router.include_router(usage.router)

__all__ = ["api_router"]
