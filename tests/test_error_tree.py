"""The error tree drawn in docs/architecture.md ("Errors") is Herald's: every exception class
the package defines is in it, under the class it really extends, in the module named, and
no two share a name. The API's own drawing (api/errors.py) agrees with it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import herald
import workers
from herald.api import errors as api_errors

ROOT = Path(__file__).resolve().parents[1]
_DRAWN = re.compile(r"^(?P<indent>[ |]*)\+-- (?P<name>\w+)(?:\s+(?P<module>[\w/]+\.py))?")
_ROOT = re.compile(r"^(?P<name>[\w.]+)\s*$")


def drawing(text: str, heading: str) -> list[str]:
    """The lines of the first fenced block after `heading`."""
    after = text[text.index(heading) :]
    return after.split("```\n", 2)[1].splitlines()


def edges(lines: list[str]) -> dict[str, tuple[str, str | None]]:
    """Each class drawn: its parent's name and the module it is said to be in."""
    drawn: dict[str, tuple[str, str | None]] = {}
    parents: list[str] = []  # the chain above the current line, one per depth
    for line in lines:
        if (root := _ROOT.match(line)) is not None:
            parents = [root["name"]]
            continue
        node = _DRAWN.match(line)
        assert node is not None, f"not a line of the tree: {line!r}"
        depth = len(node["indent"]) // 5 + 1
        parents = parents[:depth]
        assert node["name"] not in drawn, f"{node['name']} drawn twice"
        drawn[node["name"]] = (parents[-1], node["module"])
        parents.append(node["name"])
    return drawn


def defined() -> dict[str, type[BaseException]]:
    """Every exception class defined in `herald` and `workers`, by name; names are unique."""
    found: dict[str, type[BaseException]] = {}
    for package in (herald, workers):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == info.name
                ):
                    other = found.setdefault(name, value)
                    assert other is value, f"two error classes named {name}: one name each"
    return found


def parent_name(cls: type[BaseException]) -> str:
    [base] = cls.__bases__
    if base.__module__ == "builtins" or base.__module__.startswith("herald."):
        return base.__name__
    return f"{base.__module__.split('.')[0]}.{base.__name__}"


def test_every_error_class_is_drawn_where_it_belongs() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    drawn = edges(drawing(doc, "## Errors"))
    classes = defined()
    assert sorted(drawn) == sorted(classes), "docs/architecture.md's tree and the code differ"
    for name, (parent, module) in drawn.items():
        cls = classes[name]
        assert parent_name(cls) == parent, f"{name} extends {parent_name(cls)}, drawn {parent}"
        assert module is not None, f"{name}: name its module"
        assert cls.__module__ == "herald." + module.removesuffix(".py").replace("/", "."), name


def test_the_api_drawing_agrees() -> None:
    assert api_errors.__doc__ is not None
    lines = drawing(api_errors.__doc__, "")
    lines[0] = lines[0].split()[0]  # the root line carries the envelope beside the name
    classes = defined()
    for name, (parent, _) in edges(lines).items():
        assert parent_name(classes[name]) == parent, name
    api = {n for n, c in classes.items() if issubclass(c, api_errors.ApiError)} - {"ApiError"}
    assert set(edges(lines)) == api


def test_a_misplaced_class_is_seen() -> None:
    lines = ["Exception", " +-- A      a.py", " |    +-- B  b.py", " +-- C", "ValueError", " +-- D"]
    assert edges(lines) == {
        "A": ("Exception", "a.py"),
        "B": ("A", "b.py"),
        "C": ("Exception", None),
        "D": ("ValueError", None),
    }
