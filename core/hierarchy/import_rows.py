"""What an import holds while it runs: its report, its bad rows, and the nodes as they will be."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from core.errors import ImportRejected, Phrase, RowError
from core.hierarchy.model import Level


@dataclass
class ImportReport:
    nodes_added: int = 0
    nodes_updated: int = 0
    categories_added: int = 0
    categories_updated: int = 0
    rules: int | None = None  # routing rules written (None: no routing file in the import)
    people_added: int = 0
    people_updated: int = 0
    posts_added: int = 0
    posts_updated: int = 0
    identities_added: int = 0
    boundaries: int = 0
    rows_read: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def lap(self, phase: str) -> None:
        """Record how long the phase that just ended took."""
        now = time.perf_counter()
        last = getattr(self, "_last", None) or now
        self.phases[phase] = self.phases.get(phase, 0.0) + now - last
        self._last = now

    @property
    def changed(self) -> bool:
        return any((self.nodes_added, self.nodes_updated, self.categories_added,
                    self.categories_updated, self.people_added, self.people_updated,
                    self.posts_added, self.posts_updated, self.identities_added,
                    self.boundaries, self.rules))

    def summary(self) -> str:
        return (
            f"nodes +{self.nodes_added} ~{self.nodes_updated}, "
            f"people +{self.people_added} ~{self.people_updated}, "
            f"posts +{self.posts_added} ~{self.posts_updated}, "
            f"chat identities +{self.identities_added}, "
            f"categories +{self.categories_added} ~{self.categories_updated} "
            + (f"boundaries {self.boundaries} " if self.boundaries else "")
            + (f"routing rules {self.rules} " if self.rules is not None else "") +
            f"in {self.seconds:.1f}s"
        )


class Errors:
    """Collects bad rows, keeping the first `limit` and counting the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[RowError] = []
        self.dropped = 0

    def add(self, file: str, row: int, reason: str | Phrase, unit: str = "") -> None:
        if len(self.items) < self.limit:
            self.items.append(RowError(file, row, reason, unit))
        else:
            self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.items) or self.dropped > 0

    def raise_if_any(self) -> None:
        if self:
            self.items.sort(key=lambda e: (e.file, e.row))
            raise ImportRejected(self.items, truncated=self.dropped)


@dataclass
class NodeRow:
    code: str
    parent_code: str
    level: Level
    name: str
    lat: float | None
    lon: float | None
    where: tuple[str, int]


@dataclass
class TreeNode:
    """A node as it will be after the import: from the database, the files, or both."""

    id: int
    code: str
    parent_code: str
    level: Level
    name: str
    path: str
    lat: float | None
    lon: float | None
    stored: tuple[object, ...] | None  # the stored row, None for a new node
    where: tuple[str, int] | None = None  # the file row that sets it
