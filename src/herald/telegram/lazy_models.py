"""aiogram's pydantic models built when first used, not all of them when aiogram is imported.

Importing aiogram builds the schema and validator of every Bot API type and method: the
end of `aiogram/types/__init__.py` calls `model_rebuild` on each of its 403 types (they
are declared with `defer_build=True`, only to be built there), and each of the 188
methods is built when its class is defined. That was 4 s of a worker's start-up on a quiet
machine (docs/benchmarks.md, "Worker cold start"), for the few models Herald uses: the
send methods, and `Message` with what it holds.

`install()`, called when the `herald` package is imported, puts a finder in front of
`sys.meta_path` that wraps the first import of aiogram. While aiogram's modules run:
- pydantic's default for `defer_build` is on, so the methods are not built either;
- `aiogram.types`' closing `model_rebuild(_types_namespace=...)` calls only keep that
  namespace (every type by name: the names its modules import under `TYPE_CHECKING`).
Then every aiogram model still unbuilt gets that namespace as its parent namespace,
which pydantic reads when it builds a model on first use (a validation, an instance, a
`Response[...]` of aiogram's session), as `model_rebuild` would have read it. Everything
is put back as it was, and the finder removes itself: models defined later are built
as usual.

What this cannot do: a model that is not aiogram's but holds an unbuilt aiogram type has
no namespace for the names that type refers to, and stays unbuildable. Herald has none;
`telegram/sender.py` builds what it sends and what it reads back before any is used.
Imported before the `herald` package (a script importing aiogram first), aiogram is built
as usual: slower, the same behaviour. A pydantic without the two hooks used here gets the
usual import too.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

PACKAGE = "aiogram"


def install() -> None:
    """Defer the builds of aiogram's models, unless aiogram is imported already."""
    if PACKAGE in sys.modules or any(isinstance(f, _AiogramFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _AiogramFinder())


class _AiogramFinder:
    """A meta path finder (not subclassing importlib.abc's: `herald` is imported by every
    command, and importlib.abc costs more to import than all of this)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PACKAGE:
            return None
        sys.meta_path.remove(self)
        spec = None
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_package = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            # The package's __init__ imports aiogram.types and aiogram.methods: all of it.
            with _deferred_builds() as namespace:
                exec_package(module)
            _lend_namespace(namespace)

        # This loader instance serves this one module only.
        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


@contextmanager
def _deferred_builds() -> Iterator[dict[str, Any]]:
    """Yield the dict that receives `aiogram.types`' namespace."""
    from pydantic import BaseModel
    from pydantic._internal import _config

    namespace: dict[str, Any] = {}
    defaults: dict[str, Any] = _config.config_defaults  # type: ignore[assignment]
    rebuild = BaseModel.__dict__["model_rebuild"]
    if "defer_build" not in defaults or not isinstance(rebuild, classmethod):
        yield namespace  # another pydantic: the usual import
        return

    def keep_namespace(
        cls: type[BaseModel],
        *,
        _types_namespace: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool | None:
        if _types_namespace is not None and cls.__module__.startswith(f"{PACKAGE}.types."):
            namespace.update(_types_namespace)
            return None
        # One frame more (this one) between the caller and the namespace it means.
        kwargs["_parent_namespace_depth"] = kwargs.get("_parent_namespace_depth", 2) + 1
        result: bool | None = rebuild.__func__(cls, _types_namespace=_types_namespace, **kwargs)
        return result

    defer_build = defaults["defer_build"]
    defaults["defer_build"] = True
    BaseModel.model_rebuild = classmethod(keep_namespace)  # type: ignore[assignment,method-assign,arg-type]
    try:
        yield namespace
    finally:
        BaseModel.model_rebuild = rebuild  # type: ignore[assignment,method-assign]
        defaults["defer_build"] = defer_build


def _lend_namespace(namespace: dict[str, Any]) -> None:
    """Give every unbuilt aiogram model the namespace aiogram.types would have built it in."""
    if not namespace:
        return
    from pydantic import BaseModel

    pending: list[type[BaseModel]] = [BaseModel]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith(f"{PACKAGE}.") and not cls.__pydantic_complete__:
            cls.__pydantic_parent_namespace__ = namespace
