"""What every page of the gateway's console starts from: the logged-in tenant (read
fresh for each page), the process's services, and how a page answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse

from dynaseal.core.errors import APIError
from dynaseal.gateway.services import GatewayServices
from dynaseal.storage.gateway_models import Tenant
from dynaseal.webui.app import CurrentLogin, LoginRequired, base_path, console_of
from dynaseal.webui.sessions import Login

#: The tenant's pages: path, name, section key.
NAV = (
    ("/", "Overview", "overview"),
    ("/keys", "Signing keys", "keys"),
    ("/events", "Keys in use", "events"),
    ("/ledger", "Usage ledger", "ledger"),
    ("/callbacks", "Callbacks", "callbacks"),
    ("/limits", "Limits", "limits"),
)
ADMIN_NAV = (("/admin", "Tenants", "admin"),)

#: What a redirect after an action says (``?notice=<code>``): fixed texts, so nothing
#: a link carries is ever rendered.
NOTICES = {
    "key_retired": "The signing key is retiring: it verifies until the end of its grace period.",
    "key_revoked": "The signing key is revoked: keys signed with it are refused from now on.",
    "event_revoked": "The event is revoked: every key carrying it is refused from now on.",
    "all_revoked": "Every dynamic key minted until now is refused.",
    "callback_saved": "Callback settings saved.",
    "test_sent": "A test event is on its way; it appears below.",
    "resent": "The delivery is queued to be sent again now.",
    "limits_saved": "Limits saved; they apply to the next requests.",
    "tenant_disabled": "The tenant is disabled: its dynamic keys are refused.",
    "tenant_enabled": "The tenant is enabled again.",
}


@dataclass
class Page:
    request: Request
    services: GatewayServices
    login: Login
    tenant: Tenant

    @property
    def base(self) -> str:
        return base_path(self.request)

    @property
    def gateway_url(self) -> str:
        """The gateway's own URL as the browser reached it (what devices call)."""
        url = self.request.url
        return f"{url.scheme}://{url.netloc}{self.base.removesuffix('/console')}"

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        notice = NOTICES.get(self.request.query_params.get("notice", ""))
        nav = (ADMIN_NAV + NAV) if self.tenant.is_admin else NAV
        return console_of(self.request).render(
            self.request,
            template,
            {"tenant": self.tenant, "nav": nav, "notice": notice, **context},
            login=self.login,
            status=status,
        )

    def done(self, path: str, notice: str) -> RedirectResponse:
        """After an action: back to a page (303, so a reload does not repeat it)."""
        return RedirectResponse(f"{self.base}{path}?notice={notice}", 303)


async def current_page(request: Request, login: CurrentLogin) -> Page:
    services: GatewayServices = request.app.state.services
    async with services.db.sessions() as session:
        tenant = await session.get(Tenant, login.subject)
    if tenant is None or tenant.disabled_at is not None:  # as the API refuses its tokens
        raise LoginRequired
    return Page(request, services, login, tenant)


TenantPage = Annotated[Page, Depends(current_page)]


async def admin_page(page: TenantPage) -> Page:
    if not page.tenant.is_admin:
        raise APIError(403, "Only the operator (the admin account) may open this page.")
    return page


AdminPage = Annotated[Page, Depends(admin_page)]
