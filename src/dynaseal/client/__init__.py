"""The device side: log in to the backend, get a dynamic key, call the gateway with the
ordinary OpenAI SDK.

    with DeviceClient("http://127.0.0.1:9000", "client1", "client1") as device:
        llm = device.openai()   # renews its key when it expires or is spent
        llm.chat.completions.create(model="deepseek-chat", messages=[...])

With ``bind=True`` the keys are bound to a key pair the device makes (and keeps, with
``key_file=``): a copied key is useless without it. ``device.child_key(...)`` derives a
narrower key for a sub-agent without asking the backend.
"""

from dynaseal.client.aio import AsyncDeviceClient
from dynaseal.client.children import ChildKey
from dynaseal.client.device_key import DeviceKey
from dynaseal.client.errors import DeviceClientError
from dynaseal.client.keys import DynamicKey
from dynaseal.client.sync import DeviceClient

__all__ = [
    "AsyncDeviceClient",
    "ChildKey",
    "DeviceClient",
    "DeviceClientError",
    "DeviceKey",
    "DynamicKey",
]
