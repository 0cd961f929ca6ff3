"""Durable copies of results: what a copy job is, and when to try a failed one again (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("video", "last_frame")
# Attempts of one copy before it is given up (the task stays a success; its upstream URL stays).
MAX_COPY_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class MediaCopy:
    task_id: str
    variant: str  # video | last_frame
    owner_id: str
    source_url: str
    state: str  # pending | stored | failed | expired
    attempts: int
    name: str | None = None
    size: int | None = None


def retry_at(attempts_made: int, now: float) -> float | None:
    """30 s, 1, 2, 4 … minutes after each failed attempt, up to an hour; None when given up."""
    if attempts_made >= MAX_COPY_ATTEMPTS:
        return None
    return now + min(3600.0, 30.0 * float(2 ** max(0, attempts_made - 1)))


def file_name(task_id: str, variant: str, source_url: str) -> str:
    """The stored file's name: flat, from the task id, with the source's extension."""
    path = source_url.split("?", 1)[0].rsplit("/", 1)[-1]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if not ext.isalnum() or len(ext) > 5:
        ext = "mp4" if variant == "video" else "png"
    return f"{task_id}.{variant}.{ext}"
