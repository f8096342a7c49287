"""The device side: log in to the backend, get a dynamic key, call the gateway with the
ordinary OpenAI SDK.

    with DeviceClient("http://127.0.0.1:9000", "client1", "client1") as device:
        llm = device.openai()   # renews its key when it expires or is spent
        llm.chat.completions.create(model="deepseek-chat", messages=[...])
"""

from dynaseal.client.aio import AsyncDeviceClient
from dynaseal.client.errors import DeviceClientError
from dynaseal.client.keys import DynamicKey
from dynaseal.client.sync import DeviceClient

__all__ = ["AsyncDeviceClient", "DeviceClient", "DeviceClientError", "DynamicKey"]
