"""The operations guide documents every setting there is."""

from __future__ import annotations

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
