"""Intake's markup validation time against text length, for adversarial texts.

    .venv/bin/python -m bench.markup_validation [--repeat 15] [--old]

For each pattern (the floods of issue 11, finding 1) and each length from 1,000 to
16,384 characters (intake's raw limit), times what intake runs on a task's text:
`TaskIn.model_validate` with the text and its parse_mode (pydantic, the markup parser,
the length check), best of `--repeat` runs of its CPU time (process time, so what else
runs on the machine counts less), in one process. Linear growth shows as a constant
time per 1,000 characters: the last column divides the time at 16,384 by the time at
1,000 (16.4 if exactly linear; less where a fixed cost weighs at 1,000).

`--old` times the regular expressions intake used before (issue 11's finding 1) on the
same texts, up to the first length that takes over 2 s, for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import re
import time
from collections.abc import Callable

from pydantic import ValidationError

from bench.delivery_common import uptime
from herald.api.schemas import MAX_RAW_TEXT, TaskIn

LENGTHS = [1_000, 2_000, 4_000, 8_000, MAX_RAW_TEXT]
PATTERNS: list[tuple[str, str, str]] = [
    ("MarkdownV2", "[", "brackets"),
    ("MarkdownV2", "[a](", "link openings"),
    ("MarkdownV2", "[[[[x]]]]", "nested brackets"),
    ("MarkdownV2", "[a](b)", "closed links"),
    ("MarkdownV2", "[a]", "bare links"),
    ("MarkdownV2", "*_~", "emphasis marks"),
    ("MarkdownV2", "*a", "marks and text"),
    ("MarkdownV2", "__", "underline marks"),
    ("MarkdownV2", "||", "spoiler marks"),
    ("MarkdownV2", "\\", "backslashes"),
    ("MarkdownV2", "`", "backticks"),
    ("MarkdownV2", "```", "pre fences"),
    ("MarkdownV2", "```a\nb", "unclosed pre"),
    ("MarkdownV2", ">", "quote marks"),
    ("MarkdownV2", "![", "emoji openings"),
    ("MarkdownV2", "[*[", "links and marks"),
    ("MarkdownV2", "[\\.[", "links and escapes"),
    ("MarkdownV2", "a", "plain text"),
    ("HTML", "<", "less-than"),
    ("HTML", "</", "end tag openings"),
    ("HTML", "<b>", "open tags"),
    ("HTML", "<b>x</b>", "closed tags"),
    ("HTML", '<a href="', "unclosed attribute"),
    ("HTML", "<b a ", "attributes"),
    ("HTML", "&", "ampersands"),
    ("HTML", "&#", "numeric references"),
    ("HTML", "&#0;", "null references"),
    ("HTML", "&lt;", "named references"),
    ("HTML", "<a></a>=", "empty anchors"),
    ("HTML", "&<a>", "ampersands and anchors"),
    ("HTML", "a", "plain text"),
]


def _code(text: str) -> str:
    """`text` as a Markdown code span that survives a table: backticks and | inside."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}".replace("|", "\\|")


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _new(text: str, mode: str) -> None:
    with contextlib.suppress(ValidationError):
        TaskIn.model_validate({"chat_id": 5, "text": text, "parse_mode": mode})


# Intake before the fix (src/herald/api/schemas.py up to this change), for comparison.
_HTML_TAG = re.compile(r"<[^>]*>")
_MD_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\]\\])*)\]\((?:\\.|[^)\\])*\)")
_MD_MARK = re.compile(r"(?<!\\)(\|\||__|[*_~`])")
_MD_ESCAPE = re.compile(r"\\(.)")


def _old(text: str, mode: str) -> None:
    if mode == "HTML":
        html.unescape(_HTML_TAG.sub("", text))
    else:
        _MD_ESCAPE.sub(r"\1", _MD_MARK.sub("", _MD_LINK.sub(r"\1", text)))


def _best(check: Callable[[str, str], None], text: str, mode: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        check(text, mode)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--old", action="store_true", help="time the old regular expressions")
    args = parser.parse_args()
    check = _old if args.old else _new
    print(uptime())
    header = " | ".join(f"{n:,}" for n in LENGTHS)
    print(f"| mode | pattern | {header} (ms) | 16,384 / 1,000 |")
    print("|---|---|" + "---:|" * (len(LENGTHS) + 1))
    for mode, unit, name in PATTERNS:
        cells: list[str] = []
        times: list[float] = []
        for size in LENGTHS:
            if times and times[-1] > 2.0:
                cells.append("-")
                continue
            times.append(_best(check, _fill(unit, size), mode, 1 if args.old else args.repeat))
            cells.append(f"{times[-1] * 1000:.2f}")
        ratio = f"{times[-1] / times[0]:.1f}" if len(times) == len(LENGTHS) else "-"
        print(f"| {mode} | {name} {_code(repr(unit))} | {' | '.join(cells)} | {ratio} |")
    print(uptime())


if __name__ == "__main__":
    main()
