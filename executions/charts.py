"""The overview's charts as plain shapes for an inline SVG: drawn on the server, no JavaScript library.

Each function turns the bars of ``executions.stats`` into coordinates in a fixed
``WIDTH`` x ``HEIGHT`` view box (the SVG scales to its container); the template
draws them (``templates/executions/overview.html``).
"""

from dataclasses import dataclass

from executions.stats import Bar

WIDTH, HEIGHT = 600, 160
TOP, BOTTOM, LEFT = 10, 20, 0  # room for the scale's label above, the time labels below


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    title: str
    kind: str  # a CSS class: completed, failed


@dataclass(frozen=True)
class Chart:
    rects: list[Rect]
    paths: dict[str, str]  # CSS class -> an SVG path's "d"
    top: str  # the value of the top line
    labels: list[tuple[float, str]]  # x, text: the start of some bars
    empty: bool
    width: int = WIDTH
    height: int = HEIGHT


def _plot_height() -> float:
    return HEIGHT - TOP - BOTTOM


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value``: a round figure for the top line."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _labels(bars: list[Bar], slot: float, label_format: str) -> list[tuple[float, str]]:
    every = max(1, len(bars) // 6)
    return [(LEFT + index * slot, bar.start.strftime(label_format)) for index, bar in enumerate(bars)][::every]


def throughput_chart(bars: list[Bar], label_format: str) -> Chart:
    """Stacked bars: executions that completed, and those that failed or timed out, per bar."""
    slot = (WIDTH - LEFT) / max(len(bars), 1)
    top = _nice_top(max((bar.figures.completed + bar.figures.unsuccessful for bar in bars), default=0))
    scale = _plot_height() / top
    rects = []
    for index, bar in enumerate(bars):
        x, base = LEFT + index * slot + 1, HEIGHT - BOTTOM
        when = bar.start.strftime(label_format)
        for kind, count in (("completed", bar.figures.completed), ("failed", bar.figures.unsuccessful)):
            if count:
                height = count * scale
                base -= height
                rects.append(
                    Rect(x, round(base, 2), round(slot - 2, 2), round(height, 2), f"{when}: {count} {kind}", kind)
                )
    return Chart(rects, {}, f"{top:g}", _labels(bars, slot, label_format), not rects)


def duration_chart(bars: list[Bar], label_format: str) -> Chart:
    """Lines of the p50 and p95 run time per bar (seconds), broken where a bar had no run."""
    slot = (WIDTH - LEFT) / max(len(bars), 1)
    values = {"p50": [bar.figures.p50 for bar in bars], "p95": [bar.figures.p95 for bar in bars]}
    top = _nice_top(max((v for series in values.values() for v in series if v is not None), default=0))
    scale = _plot_height() / top
    paths = {}
    for name, series in values.items():
        parts, pen_down = [], False
        for index, value in enumerate(series):
            if value is None:
                pen_down = False
                continue
            x, y = LEFT + (index + 0.5) * slot, HEIGHT - BOTTOM - value * scale
            parts.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            if not pen_down and (index + 1 >= len(series) or series[index + 1] is None):
                parts.append("h0.1")  # a lone point still shows, with the line's round cap
            pen_down = True
        if parts:
            paths[name] = " ".join(parts)
    return Chart([], paths, f"{top:g} s", _labels(bars, slot, label_format), not paths)
