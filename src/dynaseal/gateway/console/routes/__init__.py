"""The console's pages, one module per page."""

from dynaseal.gateway.console.routes import (
    admin,
    callbacks,
    events,
    ledger,
    limits,
    overview,
    signing_keys,
)

ROUTERS = [
    overview.router,
    signing_keys.router,
    events.router,
    ledger.router,
    callbacks.router,
    limits.router,
    admin.router,
]
