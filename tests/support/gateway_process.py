"""A gateway in a process of its own, for tests that SIGKILL it.

``python gateway_process.py PORT CALLBACK_URL``: settings come from the environment
(DATABASE_URL, OPENAI_BASE_URL, CALLBACK_RETRY_SCHEDULE_SECONDS ...); the demo tenant
calls back to CALLBACK_URL.
"""

from __future__ import annotations

import sys

import uvicorn

from dynaseal.gateway.app import create_app
from dynaseal.gateway.settings import GatewaySettings


def main() -> None:
    port, callback_url = int(sys.argv[1]), sys.argv[2]
    app = create_app(GatewaySettings(), demo=True, demo_data_callback_url=callback_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
