"""``CategoryCounts``: exact value counts of a categorical column, bounded in size."""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["DEFAULT_MAX_CATEGORIES", "CategoryCounts"]

DEFAULT_MAX_CATEGORIES = 1000


class CategoryCounts:
    """Exact counts per value (str, int, float or bool), at most ``max_categories`` values.

    A value first seen when the table is full is counted in ``overflow`` (the total stays
    exact; that value's own count is not kept). Merging adds counts, so the merge of
    partials is exact as long as no side overflowed.
    """

    __slots__ = ("counts", "overflow", "max_categories")

    def __init__(self, max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        self.counts: dict[Any, int] = {}
        self.overflow = 0
        self.max_categories = max_categories

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    def add_counts(self, pairs: Iterable[tuple[Any, int]]) -> None:
        counts = self.counts
        for value, n in pairs:
            if value in counts:
                counts[value] += n
            elif len(counts) < self.max_categories:
                counts[value] = n
            else:
                self.overflow += n

    def merge(self, other: "CategoryCounts") -> None:
        self.add_counts(other.counts.items())
        self.overflow += other.overflow

    def to_dict(self) -> dict[str, Any]:
        # pairs, not an object: JSON object keys would turn 1 and "1" into the same key
        return {"values": [[k, v] for k, v in self.counts.items()], "overflow": self.overflow}

    @classmethod
    def from_dict(cls, data: dict[str, Any], max_categories: int = DEFAULT_MAX_CATEGORIES) -> "CategoryCounts":
        out = cls(max_categories)
        out.add_counts((k, int(v)) for k, v in data["values"])
        out.overflow += int(data.get("overflow", 0))
        return out
