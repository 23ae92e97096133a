"""A task is defined once: its forms agree with the table, the API shows what it stores, and
docs/architecture.md shows the transition table that the code follows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from herald.api.schemas import _CONTENT_FIELDS, EventOut, TaskOut
from herald.db.models import EventRecord, NewTask, Task, TaskEvent, TaskRecord
from herald.states import TRANSITIONS

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _columns(model: Any) -> dict[str, str]:
    """Column name -> the Python type the model declares for it (`Mapped[...]` unwrapped)."""
    annotations = {}
    for cls in reversed(model.__mro__):
        annotations.update(getattr(cls, "__annotations__", {}))
    found = {}
    for attribute in inspect(model).column_attrs:
        declared = annotations[attribute.key]
        assert declared.startswith("Mapped["), declared
        found[attribute.columns[0].name] = declared[len("Mapped[") : -1]
    return found


def _fields(record: Any) -> dict[str, str]:
    """Field -> its declared type (a NamedTuple keeps string annotations as ForwardRefs)."""
    return {k: getattr(v, "__forward_arg__", v) for k, v in record.__annotations__.items()}


def test_the_records_are_the_tables_columns_with_their_types() -> None:
    assert _fields(TaskRecord) == _columns(Task)
    assert _fields(EventRecord) == _columns(TaskEvent)


def test_what_intake_writes_are_columns_of_the_task() -> None:
    task = _fields(TaskRecord)
    assert {name: task.get(name) for name in _fields(NewTask)} == _fields(NewTask)


def test_the_api_shows_columns_and_content_only() -> None:
    content = {*_CONTENT_FIELDS, "buttons"}
    shown = set(TaskOut.model_fields)
    assert content <= shown
    assert shown - content <= set(TaskRecord._fields)
    assert set(EventOut.model_fields) <= set(EventRecord._fields)


def _section(title: str) -> str:
    text = ARCHITECTURE.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_docs_diagram_has_the_tables_transitions() -> None:
    section = _section("Task states")
    diagram = section[
        section.index("```mermaid") : section.index("```\n", section.index("```mermaid") + 3)
    ]
    drawn = set(re.findall(r"^\s+(\S+) --> (\S+):", diagram, re.MULTILINE))
    assert drawn == {(e.frm or "[*]", e.to) for e in TRANSITIONS}


def test_the_docs_table_is_the_transition_table() -> None:
    section = _section("Task states")
    header = "| from | to | actor | action | reason | why |"
    lines = section[section.index(header) :].splitlines()[2:]
    documented = [line for line in (ln.strip() for ln in lines[: lines.index("")]) if line]
    expected = [
        f"| {e.frm or '(new)'} | {e.to} | {e.actor} | {e.action} | {e.reason} | {e.why} |"
        for e in TRANSITIONS
    ]
    assert documented == expected, "docs/architecture.md should read:\n" + "\n".join(expected)
