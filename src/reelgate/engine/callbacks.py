"""The addresses upstreams call back on, one per task, carrying an unguessable token.

The token is an HMAC of the task id under the instance's secret key, so nothing is stored and a
guessed or altered address is refused. Ark's callbacks are unsigned: a valid address only earns a
look-up (the engine confirms the state upstream), never a state change on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

ROUTE = "/v1/callbacks/{provider}/{task_id}/{token}"


class CallbackUrls:
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = hashlib.sha256(b"reelgate-callback:" + key).digest()
        self._base = base_url.rstrip("/")

    def token(self, task_id: str) -> str:
        mac = hmac.new(self._key, task_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def url(self, provider: str, task_id: str) -> str:
        path = ROUTE.format(provider=provider, task_id=task_id, token=self.token(task_id))
        return self._base + path

    def verify(self, task_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(task_id).encode(), token.encode())
