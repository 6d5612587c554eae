"""Pausing Python's cyclic garbage collector around bulk work.

Loading manifests, reading a site and planning build large numbers of small objects that stay
alive and hold no reference cycles; the collector would scan them again and again (measured: a
third of a plan's time at 10,000 task sequences) and free nothing. Reference counting still frees
everything as usual while it is paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
