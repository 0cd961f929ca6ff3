"""reelgate: a durable gateway for asynchronous AI video generation, and its Python SDK.

The SDK's names are exported here (``reelgate.Client``, ``reelgate.AsyncClient``, ``reelgate.Task``,
the ``ReelgateClientError`` tree); the server lives in the sub-packages.
"""

from reelgate.client._async import AsyncClient
from reelgate.client._sync import Client
from reelgate.client.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NoContentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReelgateClientError,
    ServerError,
    WaitTimeoutError,
)
from reelgate.client.models import AsyncPage, Page, Task, TaskError, TaskStatus

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncPage",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "NoContentError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "ReelgateClientError",
    "ServerError",
    "Task",
    "TaskError",
    "TaskStatus",
    "WaitTimeoutError",
    "__version__",
]
