"""A DynamoDB client of a worker that dies at its n-th write: just before the write takes effect,
or just after it (the answer lost). Walking n over every write of a piece of work, then retrying
it, shows what a crash at each point leaves behind."""

from __future__ import annotations

from typing import Any

WRITES = frozenset({"put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items"})


class WorkerDied(Exception):
    """The worker's container was killed."""


class DiesAtWrite:
    def __init__(self, client: Any, at: int, *, after: bool) -> None:
        self.client, self.at, self.after = client, at, after
        self.writes = 0

    @property
    def died(self) -> bool:
        return self.writes >= self.at

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.client, name)
        if name not in WRITES:
            return call

        def write(**kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.at and not self.after:
                raise WorkerDied(f"killed before write {self.at} ({name})")
            answer = call(**kwargs)
            if self.writes == self.at and self.after:
                raise WorkerDied(f"killed after write {self.at} ({name})")
            return answer

        return write
