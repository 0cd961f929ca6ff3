"""A token's webhooks: its endpoint, its signing secret (rotatable) and each task's delivery log."""

from __future__ import annotations

from reelgate.core import webhooks
from reelgate.core.errors import NotFound
from reelgate.core.ids import ApiToken
from reelgate.core.webhooks import Delivery, Endpoint
from reelgate.service.base import ServiceBase
from reelgate.service.images import check_url

# How long the secret before a rotation still signs deliveries (receivers switch meanwhile).
ROTATION_OVERLAP_S = 24 * 3600.0


class WebhookUseCases(ServiceBase):
    async def webhook(self, owner: ApiToken) -> Endpoint:
        """The token's endpoint and secret; the secret is made on first use."""
        found = await self.store.webhook_endpoint(owner.id)
        if found is not None:
            return found
        return await self.store.ensure_webhook_endpoint(
            owner.id, webhooks.new_secret(), self.clock()
        )

    async def check_webhook_url(self, url: str, param: str = "url") -> None:
        """Refuse a URL the SSRF guard would not send to (named ``param`` in the error)."""
        await check_url(self._allow, url, param)

    async def set_webhook(
        self, owner: ApiToken, url: str | None, *, param: str = "url"
    ) -> Endpoint:
        """Point the token's endpoint at ``url`` (None: no endpoint); re-enables a disabled one."""
        if url is not None:
            await self.check_webhook_url(url, param)
        await self.webhook(owner)
        await self.store.update_webhook_endpoint(
            owner.id, self.clock(), url=url, disabled_at=None, disabled_reason=""
        )
        return await self.webhook(owner)

    async def rotate_webhook_secret(self, owner: ApiToken) -> Endpoint:
        current = await self.webhook(owner)
        now = self.clock()
        await self.store.update_webhook_endpoint(
            owner.id,
            now,
            secret=webhooks.new_secret(),
            previous_secret=current.secret,
            previous_until=now + ROTATION_OVERLAP_S,
        )
        return await self.webhook(owner)

    async def deliveries(self, owner: ApiToken, task_id: str) -> list[Delivery]:
        await self.get(owner, task_id)  # 404 for another token's task
        return await self.store.task_deliveries(owner.id, task_id)

    async def replay(self, owner: ApiToken, task_id: str, delivery_id: str) -> Delivery:
        await self.get(owner, task_id)
        if not await self.store.replay_delivery(owner.id, task_id, delivery_id, self.clock()):
            raise NotFound(f"no delivery '{delivery_id}' for this task", code="delivery_not_found")
        self.webhooks_due.set()
        return next(
            d for d in await self.store.task_deliveries(owner.id, task_id) if d.id == delivery_id
        )
