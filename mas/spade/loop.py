"""Run a coroutine of SPADE agents in a fresh event loop and propagate its errors.

``spade.run`` logs and swallows exceptions (and Ctrl-C) and leaves SPADE's process-wide
container with a closed loop, so a second day in the same process fails. This runs each day in
a new loop installed in the container, cancels what is left at the end, and re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from spade.container import Container


def run_agents[T](main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` in a fresh loop shared with SPADE's container; errors propagate."""
    container = Container()
    container.reset()  # a new loop (uvloop when available), no registered agents
    loop = container.loop
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
