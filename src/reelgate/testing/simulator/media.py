"""Sample result files a simulator serves as its upstream's videos: one small MP4 and its last
frame (a PNG), rendered once per simulator on first use."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from starlette.responses import FileResponse

from reelgate.render import render_video

__all__ = ["SampleMedia"]


class SampleMedia:
    def __init__(self, label: str = "reelgate simulator") -> None:
        self._label = label
        self._lock = asyncio.Lock()
        self._dir: Path | None = None

    async def directory(self) -> Path:
        """Where ``video.mp4`` and ``frame.png`` are (concurrent first calls share one render)."""
        async with self._lock:
            if self._dir is None:
                media = Path(tempfile.mkdtemp(prefix="reelgate-sim-"))
                await asyncio.to_thread(
                    render_video,
                    media / "video.mp4",
                    prompt=self._label,
                    duration_s=2,
                    width=160,
                    height=90,
                    last_frame_path=media / "frame.png",
                )
                self._dir = media
            return self._dir

    async def response(self, name: str) -> FileResponse:
        """The video for a name ending in ``.mp4``, else the last frame."""
        video = name.endswith(".mp4")
        path = await self.directory() / ("video.mp4" if video else "frame.png")
        return FileResponse(path, media_type="video/mp4" if video else "image/png")
