"""Progress bars on stderr: shown only for work that takes over a second, never with --json."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tqdm import tqdm


def bar(total: int | None, desc: str, quiet: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that appears after 1 s, with ETA; disabled when ``quiet``."""
    return tqdm(total=total, desc=desc, file=sys.stderr, delay=1.0, disable=quiet,
                dynamic_ncols=True, leave=False, **kwargs)


def window_sessions(progress: tqdm) -> Callable[[int, int], None]:
    """A measurement ``on_session`` callback that shows, after a bar counting finished items,
    how far the current interleave window has got (its items finish together at its end)."""
    def show(taken: int, planned: int) -> None:
        if progress.disable:
            return
        progress.set_postfix_str(f"window: session {taken}/{planned}", refresh=False)
        if progress.format_dict["elapsed"] >= progress.delay:  # the bar's own 1 s delay holds
            progress.refresh()
    return show


def follow(progress: tqdm) -> Callable[[int, int], None]:
    """An ``on_progress(done, total)`` callback that moves the bar to ``done`` of ``total``."""
    def show(done: int, total: int) -> None:
        progress.total = total
        progress.update(done - progress.n)
    return show
