"""Record of the TensorRT API a model touched on the emulator.

The conformance tests build the model on the emulator, then check every
recorded method call (with the parameter names it used), layer attribute and
enum member against the real ``tensorrt`` bindings of each supported version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass
class ApiUsage:
    """What was used: calls, attributes, enum members."""

    # (class name, method name, number of positional args, keyword names)
    calls: set[tuple[str, str, int, frozenset[str]]] = field(default_factory=set)
    # (class name, attribute name, 'get' | 'set')
    attributes: set[tuple[str, str, str]] = field(default_factory=set)
    # (enum class name, member name)
    enums: set[tuple[str, str]] = field(default_factory=set)

    def call(self, cls: str, method: str, args: tuple, kwargs: dict) -> None:
        self.calls.add((cls, method, len(args), frozenset(kwargs)))
        for v in list(args) + list(kwargs.values()):
            self.value(v)

    def attribute(self, cls: str, name: str, access: str, value=None) -> None:
        self.attributes.add((cls, name, access))
        if value is not None:
            self.value(value)

    def value(self, v) -> None:
        if isinstance(v, enum.Enum):
            self.enums.add((type(v).__name__, v.name))
        elif isinstance(v, (list, tuple)):
            for item in v:
                if isinstance(item, enum.Enum):
                    self.enums.add((type(item).__name__, item.name))

    def merge(self, other: "ApiUsage") -> None:
        self.calls |= other.calls
        self.attributes |= other.attributes
        self.enums |= other.enums
