"""Types and helpers shared by the builder tests (a uniquely named module, so it can be imported)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

from toolhive import builders

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
MakeServer = Callable[..., builders.Server]


class Golden:
    """Compares a value with `golden/<name>` (JSON, or text for `.txt`/`.json` strings)."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        path = GOLDEN_DIR / name
        if self.update:
            path.write_text(text)
            return
        assert path.exists(), f"golden/{name} is missing: run with UPDATE_GOLDEN=1 to create it"
        assert text == path.read_text(), f"golden/{name} differs: review, then run with UPDATE_GOLDEN=1"
