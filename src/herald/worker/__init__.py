"""`herald worker`: the delivery worker's processes around taskiq.

`runner` starts taskiq's worker on the entry point in `workers/` (the broker and the task
functions taskiq's CLI finds); `runtime` holds a process's resources; `lifeline` stops a
process whose main died; `summary` writes its log line per interval.
"""

import sys

# taskiq's dependency injection imports FastAPI, when it is installed, to accept FastAPI's
# `Depends` in task signatures. Herald's one task takes none, and FastAPI's import (its
# OpenAPI models) was an eighth of a worker's start-up: hidden while taskiq's injection
# loads, in a worker process, which imports nothing of FastAPI otherwise.
if "taskiq_dependencies" not in sys.modules and "fastapi" not in sys.modules:
    sys.modules["fastapi"] = None  # type: ignore[assignment]
    try:
        import taskiq_dependencies
    finally:
        del sys.modules["fastapi"]
    del taskiq_dependencies
