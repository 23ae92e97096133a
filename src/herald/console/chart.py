"""The overview's chart: deliveries and failures per minute over the last hour, as SVG.

Drawn on the server (the template writes the shapes computed here), so it needs no script
and no chart library; it scales with its box through the viewBox.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 720
HEIGHT = 190
LEFT = 44  # room for the axis labels
BOTTOM = 20
TOP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    minute: int  # minutes ago, 59 .. 0
    x: float
    width: float
    delivered_y: float
    delivered_h: float
    failed_y: float
    failed_h: float
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, value)
    baseline: float
    left: int
    delivered_total: int
    failed_total: int
    peak: int


def _nice_top(peak: int) -> int:
    """The axis' top: 1, 2 or 5 times a power of ten, at least `peak`."""
    if peak <= 1:
        return 1
    magnitude = 10 ** (len(str(peak)) - 1)
    top: int = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= peak)
    return top


def per_minute_chart(per_minute: list[tuple[int, int]]) -> Chart:
    peak = max((d + f for d, f in per_minute), default=0)
    top = _nice_top(peak)
    plot_h = HEIGHT - BOTTOM - TOP
    baseline = float(HEIGHT - BOTTOM)
    slot = (WIDTH - LEFT) / max(len(per_minute), 1)
    bars = []
    for i, (delivered, failed) in enumerate(per_minute):
        dh = plot_h * delivered / top
        fh = plot_h * failed / top
        bars.append(
            Bar(
                minute=len(per_minute) - 1 - i,
                x=round(LEFT + i * slot + 1, 2),
                width=round(max(slot - 2, 1), 2),
                delivered_y=round(baseline - dh, 2),
                delivered_h=round(dh, 2),
                failed_y=round(baseline - dh - fh, 2),
                failed_h=round(fh, 2),
                delivered=delivered,
                failed=failed,
            )
        )
    marks = (0, top // 2, top) if top >= 2 else (0, top)
    ticks = [(round(baseline - plot_h * v / top, 2), v) for v in marks]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        ticks=ticks,
        baseline=baseline,
        left=LEFT,
        delivered_total=sum(d for d, _ in per_minute),
        failed_total=sum(f for _, f in per_minute),
        peak=peak,
    )
