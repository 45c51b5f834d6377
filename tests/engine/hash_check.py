"""A run's hash memo that checks every hash it is told instead of computing
(`HashMemo.seed`): each seeded value must be the item's content hash over those
names, computed afresh by the model's own function (not through `engine.rules`,
which a benchmark or test may count). A wrong seed would be stored as a spoke's
link hash and make the next run see an edit nobody made
(docs/decisions/2026-12-01-hash-once.md)."""

from __future__ import annotations

from typing import Any

from spokesync.engine import rules
from spokesync.model import contact as contact_model
from spokesync.model import event as event_model
from spokesync.model.contact import Contact

# the model's functions as imported (a test counting hashes replaces the module attributes)
_CONTACT_HASH = contact_model.content_hash
_EVENT_HASH = event_model.content_hash


def fresh_hash(item: Any, names: frozenset[str]) -> str:
    if isinstance(item, Contact):
        return _CONTACT_HASH(item, names)
    return _EVENT_HASH(item, names)


class CheckedHashMemo(rules.HashMemo):
    __slots__ = ("seeded",)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.seeded: list[tuple[int, frozenset[str]]] = []  # (id of the item, names) of every seed

    def seed(self, event: Any, names: frozenset[str], value: str) -> None:
        fresh = fresh_hash(event, names)
        assert value == fresh, f"seeded hash {value} is not the item's hash {fresh} over {sorted(names)}: {event!r}"
        self.seeded.append((id(event), names))
        super().seed(event, names, value)

    def was_seeded(self, event: Any, names: frozenset[str]) -> bool:
        return (id(event), names) in self.seeded
