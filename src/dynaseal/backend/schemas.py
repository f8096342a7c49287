"""Request and response bodies of the backend's API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt

from dynaseal.core.money import Usd, UsdIn

Name = Annotated[str, Field(min_length=1, max_length=128)]
#: Token counts are bounded so that they, and sums of many, fit a 64-bit database integer.
MAX_TOKENS = 10**12
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
TokenBudget = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Email = Annotated[str, Field(min_length=3, max_length=256, pattern=r"^[^@\s]+@[^@\s]+$")]


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class PolicyView(BaseModel):
    models: list[str]
    key_budget_tokens: int = Field(description="A key's max_tokens (generated tokens).")
    key_total_tokens: int | None = Field(default=None, description="A key's max_total_tokens.")
    key_max_cost: Usd | None = Field(default=None, description="A key's max_cost (USD).")
    key_lifetime_seconds: int
    daily_token_quota: int | None = Field(
        description="Generated tokens per UTC day; null: unlimited."
    )
    daily_cost_quota: Usd | None = Field(default=None, description="USD per UTC day.")
    require_bound_keys: bool = False


class UserView(BaseModel):
    id: str
    username: str
    email: str | None
    is_admin: bool
    policy: PolicyView


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Name
    password: Annotated[str, Field(min_length=1, max_length=256)]
    email: Email | None = None
    is_admin: bool = False
    allowed_models: Annotated[list[Identifier], Field(min_length=1, max_length=64)] | None = None
    #: A key's ``max_tokens`` (generated tokens), ``max_total_tokens`` (prompt +
    #: generated) and ``max_cost`` (USD, a decimal string); omitted: the backend default.
    key_budget_tokens: TokenBudget | None = None
    key_total_tokens: TokenBudget | None = None
    key_max_cost: UsdIn | None = None
    key_lifetime_seconds: Annotated[int, Field(gt=0, le=7 * 24 * 3600)] | None = None
    #: Generated tokens per UTC day; omitted: the backend default; 0: unlimited.
    daily_token_quota: TokenCount | None = None
    #: USD per UTC day, a decimal string; omitted: the backend default; "0": unlimited.
    daily_cost_quota: UsdIn | None = None
    #: Only device-bound keys for this user; omitted: the backend default.
    require_bound_keys: bool | None = None


#: An RFC 7638 SHA-256 JWK thumbprint.
Thumbprint = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Identifier | None = None
    #: Less than the user's policy allows, if wanted.
    max_tokens: TokenBudget | None = None
    max_total_tokens: TokenBudget | None = None
    max_cost: UsdIn | None = None
    #: Bind the key to the device key of this thumbprint (``cnf.jkt``).
    dpop_jkt: Thumbprint | None = None


class KeyCreated(BaseModel):
    token: str
    event_id: str
    model: str
    models: list[str]
    max_tokens: int
    max_total_tokens: int | None = None
    max_cost: Usd | None = None
    expires_at: int
    expiring: int
    gateway_url: str
    base_url: str
    #: The device key thumbprint the key is bound to; ``null`` for a bearer key.
    dpop_jkt: str | None = None


class UsagePayload(BaseModel):
    """The gateway's usage callback: the original's three fields plus our own extras."""

    model_config = ConfigDict(extra="allow")

    event_id: Identifier
    content: str | None = None
    tokens: TokenCount
    cost: UsdIn | None = None
    request_id: Identifier | None = None
    model: str | None = None
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    status: str | None = None
    type: str | None = None
    ended_at: AwareDatetime | None = None


class BatchedUsage(UsagePayload):
    """One usage event inside a ``usage.batch``: its own id, for de-duplication."""

    id: Identifier


#: A gateway batches at most 1,000 events (``callback_batch_max``).
MAX_BATCH_EVENTS = 1000
BATCH_TYPE = "usage.batch"


class UsageBatch(BaseModel):
    """The gateway's ``usage.batch``: many usage events in one signed delivery."""

    type: Literal["usage.batch"]
    data: Annotated[list[BatchedUsage], Field(max_length=MAX_BATCH_EVENTS)]


class UsageEntry(BaseModel):
    delivery_id: str
    event_id: str
    user_id: str | None
    tokens: int
    cost: Usd | None
    content: str | None
    model: str | None
    status: str | None
    signature_verified: bool
    received_at: int
    payload: dict[str, Any]


class UsageList(BaseModel):
    object: str = "list"
    data: list[UsageEntry]
    total_tokens: int
    total_cost: Usd  # of the callbacks that had a cost
