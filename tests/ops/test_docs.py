"""The operations guide documents every setting there is."""

from __future__ import annotations

import json
import re
from pathlib import Path

from herald.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_configuration_reference() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    missing = [
        f"HERALD_{name.upper()}"
        for name in Settings.model_fields
        if f"`HERALD_{name.upper()}`" not in guide
    ]
    assert missing == [], f"add these to docs/operations.md: {missing}"


def _documented_defaults() -> dict[str, str]:
    guide = (ROOT / "docs" / "operations.md").read_text()
    rows = re.findall(r"^\| `HERALD_([A-Z0-9_]+)` \| ([^|]+) \|", guide, re.M)
    return {name.lower(): default.strip().strip("`") for name, default in rows}


def _same(documented: str, actual: object) -> bool:
    if documented == "(empty)":
        return actual == ""
    if isinstance(actual, bool):
        return documented == str(actual).lower()
    if isinstance(actual, int | float):
        return float(documented) == float(actual)
    if isinstance(actual, dict | list):
        return bool(json.loads(documented) == actual)
    return documented == str(actual)


def test_documented_defaults_are_the_real_ones() -> None:
    documented = _documented_defaults()
    wrong = {
        name: (documented[name], field.get_default(call_default_factory=True))
        for name, field in Settings.model_fields.items()
        if name in documented
        and not _same(documented[name], field.get_default(call_default_factory=True))
    }
    assert wrong == {}, "docs/operations.md shows other defaults (documented, real)"
