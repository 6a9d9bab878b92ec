"""One registry shape for every extension point (spaces, proxies, strategies, datasets, ...).

A registry maps a name to an object, refuses duplicates, and on an unknown name
raises the caller's error class with the list of known names.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from tinynas.errors import TinyNASError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of extensions of one kind (``kind`` is used in messages)."""

    def __init__(self, kind: str, *, error: type[TinyNASError] = TinyNASError) -> None:
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise self._error(f"{self.kind} {name!r} is already registered; pick another name")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@SPACES.register("mcunet")``."""

        def deco(item: T) -> T:
            return self.add(name, item)

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise self._error(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
