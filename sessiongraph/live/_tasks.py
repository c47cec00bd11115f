"""Stopping background tasks without swallowing the caller's own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stop_tasks"]


async def stop_tasks(*tasks: asyncio.Task[Any], seconds: float = 5.0) -> None:
    """Cancels `tasks` and waits at most `seconds` for them to end.

    `with suppress(CancelledError): await task` would also swallow a cancel aimed at the caller,
    leaving it running; `asyncio.wait` raises neither the tasks' errors nor eats the caller's.
    """
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=seconds)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: it ended on an error its owner already reported
