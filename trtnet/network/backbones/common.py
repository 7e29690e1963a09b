"""What every backbone family shares: its component name and the stage renaming."""

from __future__ import annotations

from typing import Any, Optional

COMPONENT = "backbone"


def label(x: Any, name: Optional[str]) -> Any:
    """Rename a stage output right away, before any consumer reads its name (int8 scales
    are looked up by the name a layer sees)."""
    if name is not None:
        x.name = name
    return x
