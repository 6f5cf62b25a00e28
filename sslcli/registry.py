"""One small registry type: names mapped to factories with a one-line description.

Factories import their heavy dependencies (torch, torchvision) when called, so listing a
registry stays instant.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from sslcli.errors import SSLError, usage_error

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    description: str


class Registry(Generic[T]):
    """Name -> (factory, description). ``kind`` names what is registered, for messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, description: str
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@registry.register("name", "what it is")`` over a factory."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, description)
            return factory

        return add

    def add(self, name: str, factory: Callable[..., T], description: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, factory, description)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown(name) from None

    def create(self, name: str, **kwargs: object) -> T:
        return self.get(name).factory(**kwargs)

    def unknown(self, name: str, hint: str = "") -> SSLError:
        """The error for a name this registry does not hold, naming the close matches."""
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        suggestion = f"did you mean {', '.join(close)}?" if close else ""
        known = f"known {self.kind}s: {', '.join(self.names())}"
        return usage_error(
            f"unknown {self.kind} {name!r}" + (f"; {suggestion}" if suggestion else ""),
            "; ".join(part for part in (hint, known) if part),
        )

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
