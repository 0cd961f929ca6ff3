"""The error the Ark simulator answers with: Ark's HTTP status, code, message and param."""

from __future__ import annotations


class ArkError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
