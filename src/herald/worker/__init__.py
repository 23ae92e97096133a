"""`herald worker`: the delivery worker's processes around taskiq.

`runner` starts taskiq's worker on the entry point in `workers/` (the broker and the task
functions taskiq's CLI finds); `runtime` holds a process's resources; `lifeline` stops a
process whose main died; `summary` writes its log line per interval.
"""
