"""The use cases, assembled: authenticate, create, get, list, cancel, wait, and apply what the
engine learns upstream.

The service is the only writer of tasks. It keeps two in-process caches for the hot status GET:
token look-ups, and task rows (terminal rows never change; a non-terminal row is reused for
``task_cache_ttl`` seconds, then for one more lifetime while it is re-read in the background,
and replaced at once when this process writes it or hears of a change).
"""

from __future__ import annotations

from reelgate.service.engine_side import EngineWrites
from reelgate.service.tasks import IDEMPOTENCY_WINDOW_S, TaskUseCases
from reelgate.service.webhooks import WebhookUseCases


class VideoService(TaskUseCases, EngineWrites, WebhookUseCases):
    """Every use case of a task, on one store and one provider registry."""


__all__ = ["IDEMPOTENCY_WINDOW_S", "VideoService"]
