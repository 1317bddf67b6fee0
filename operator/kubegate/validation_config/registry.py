"""The operator's in-memory copy of the validation config, grouped by shard. Pure; no I/O.

Keys are `(namespace, name)` of StaticTokens. Every change marks the key's shard dirty and bumps its
generation, so a writer can tell which shards to write and a caller can wait until its change is out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from kubegate.validation_config.model import TokenEntry
from kubegate.validation_config.shards import shard_of

Key = tuple[str, str]


class Registry:
    def __init__(self, shard_count: int) -> None:
        self.shard_count = shard_count
        self._entries: dict[Key, tuple[TokenEntry, ...]] = {}
        self._keys_by_shard: dict[int, set[Key]] = defaultdict(set)
        self._generation: dict[int, int] = defaultdict(int)
        self.dirty: set[int] = set()
        self.touched: set[Key] = set()
        """Keys this process has reconciled: their entries win over what is read back from a shard."""

    def shard(self, key: Key) -> int:
        return shard_of(key[0], key[1], self.shard_count)

    def generation(self, shard: int) -> int:
        return self._generation[shard]

    def get(self, key: Key) -> tuple[TokenEntry, ...]:
        return self._entries.get(key, ())

    def keys(self) -> set[Key]:
        return set(self._entries)

    def set(self, key: Key, entries: Iterable[TokenEntry], *, touch: bool = True) -> bool:
        """Replace the entries of one StaticToken; returns whether anything changed."""
        new = tuple(sorted(entries, key=lambda e: e.token_id))
        if touch:
            self.touched.add(key)
        if self._entries.get(key, ()) == new:
            return False
        shard = self.shard(key)
        if new:
            self._entries[key] = new
            self._keys_by_shard[shard].add(key)
        else:
            self._entries.pop(key, None)
            self._keys_by_shard[shard].discard(key)
        self._generation[shard] += 1
        self.dirty.add(shard)
        return True

    def remove(self, key: Key) -> bool:
        return self.set(key, ())

    def load_shard(self, shard: int, entries: Iterable[TokenEntry]) -> None:
        """Adopt what a shard Secret holds, except for keys this process reconciled itself.

        Keys of the shard that the Secret no longer holds are dropped, unless reconciled here.
        """
        grouped: dict[Key, list[TokenEntry]] = defaultdict(list)
        for entry in entries:
            key = (entry.namespace, entry.name)
            if self.shard(key) == shard:
                grouped[key].append(entry)
        for key in set(self._keys_by_shard.get(shard, ())) - set(grouped) - self.touched:
            self.set(key, (), touch=False)
        for key, found in grouped.items():
            if key not in self.touched:
                self.set(key, found, touch=False)

    def load_all(self, entries: Iterable[TokenEntry]) -> None:
        """Adopt entries read from every shard (of any shard count), except for keys reconciled here."""
        grouped: dict[Key, list[TokenEntry]] = defaultdict(list)
        for entry in entries:
            grouped[(entry.namespace, entry.name)].append(entry)
        for key, found in grouped.items():
            if key not in self.touched:
                self.set(key, found, touch=False)

    def shard_entries(self, shard: int) -> list[TokenEntry]:
        return [e for key in self._keys_by_shard.get(shard, ()) for e in self._entries[key]]
