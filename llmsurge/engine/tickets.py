"""The request budget shared by every worker: "tickets" a worker takes before it starts a request.

Slots (see :mod:`llmsurge.engine.worker`): [segment the budget is for, requests left (-1: no budget), then requests
taken by worker 0, 1, …]. A worker takes a ticket only for the segment it runs, so no request starts under a segment
that has closed; each worker's taken count says how many it started, even ones it never reported. Local runs keep
the slots in shared memory; a Ray run keeps them in one small actor (:mod:`llmsurge.engine.ray_pool`).
"""

from __future__ import annotations

from collections.abc import MutableSequence
from multiprocessing.context import BaseContext
from typing import cast

TICKET_SEGMENT, TICKETS_LEFT, TAKEN_BASE = 0, 1, 2
MAX_WORKER_IDS = 256


class TicketsBase:
    """What the pool and the workers do with the budget."""

    def set(self, index: int, value: int) -> None:
        raise NotImplementedError

    def get(self, index: int) -> int:
        raise NotImplementedError

    def take(self, segment: int, taken_index: int) -> bool:
        """Take one ticket for ``segment`` (False: none left, or the budget is another segment's)."""
        raise NotImplementedError

    async def take_async(self, segment: int, taken_index: int) -> bool:
        """:meth:`take`, from a worker's loop."""
        return self.take(segment, taken_index)


class LocalTickets(TicketsBase):
    """The slots in a shared-memory array of one machine's processes."""

    def __init__(self, ctx: BaseContext) -> None:
        self.array = ctx.Array("q", TAKEN_BASE + MAX_WORKER_IDS)

    def set(self, index: int, value: int) -> None:
        with self.array.get_lock():
            self.array[index] = value

    def get(self, index: int) -> int:
        return int(self.array[index])

    def take(self, segment: int, taken_index: int) -> bool:
        with self.array.get_lock():
            # The raw array, under the lock held: the synchronized wrapper's indexing would take the lock each time.
            t = cast("MutableSequence[int]", self.array.get_obj())
            v = t[TICKETS_LEFT]
            if v == 0 or t[TICKET_SEGMENT] != segment:
                return False
            if v > 0:
                t[TICKETS_LEFT] = v - 1
            t[taken_index] += 1
            return True
