"""The suite's summary: one Markdown table and one SVG bar chart, drawn by hand from the collected rows.

The chart puts every row that has a target on one scale, "how far from the
target": value / target for a floor (>=), target / value for a ceiling (<=),
so 100% is the target just met and longer is better, whichever way the target
points. Bars stop at 200% (an arrow says the value is further still).
"""

from html import escape

from bench.report import parse_target

BAR_CAP = 2.0  # bars stop at 200% of the target


def score(value: float | None, target: str | None) -> float | None:
    """Value against target, 1.0 = just met, higher = better; None without a target or a value."""
    parsed = parse_target(target)
    if parsed is None or value is None:
        return None
    op, bound = parsed
    if op == ">=":
        return value / bound if bound else None
    return bound / value if value > 0 else BAR_CAP


def margin(value: float | None, target: str | None) -> str:
    """By how much a target is met or missed, in words a reader can check against the two figures."""
    parsed = parse_target(target)
    if parsed is None or value is None:
        return ""
    op, bound = parsed
    if op == ">=":
        change = (value / bound - 1) * 100 if bound else 0.0
        return f"{change:+.0f}% vs the floor" if change >= 0 else f"{-change:.0f}% short"
    if value <= bound:
        return f"{(1 - value / bound) * 100:.0f}% under the limit"
    times = value / bound
    return f"{times:.1f}x the limit" if times >= 2 else f"{(times - 1) * 100:.0f}% over the limit"


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def rows_of(collected: dict):
    for bench in collected["benches"]:
        for row in bench["rows"]:
            yield bench, row


def markdown(collected: dict) -> str:
    machine = collected["machine"]
    kind = "quick smoke run (`--quick`: smaller N, fewer rounds)" if collected["quick"] else "full run"
    lines = [
        f"# Benchmarks: {kind}, {machine['date']}",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM; "
        f"Python {machine['python']}, SQLite {machine['sqlite']}, "
        f"PostgreSQL {machine['postgresql'] or 'not used'}. Whole suite {collected['seconds'] / 60:.1f} min.",
        "",
        "| bench | what | value | target | | by how much | note |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    for bench, row in rows_of(collected):
        verdict = {True: "met", False: "**missed**", None: ""}[row["met"]]
        value = fmt(row["value"]) + (f" {row['unit']}" if row["value"] is not None and row["unit"] else "")
        target = f"{row['target']} {row['unit']}".strip() if row["target"] else ""
        note = (row.get("note") or "").replace("|", "/")
        lines.append(
            f"| {bench['name']} | {row['what']} | {value} | {target.replace('<=', '≤').replace('>=', '≥')} | "
            f"{verdict} | {margin(row['value'], row['target'])} | {note} |"
        )
    met = sum(1 for _, row in rows_of(collected) if row["met"] is True)
    missed = sum(1 for _, row in rows_of(collected) if row["met"] is False)
    skipped = [b["name"] for b in collected["benches"] if b["status"] != "ran"]
    lines += ["", f"{met} targets met, {missed} missed" + (f"; not run: {', '.join(skipped)}" if skipped else "") + "."]
    lines += ["", "Chart: `summary.svg` (each bar is the value against its target; 100% = just met)."]
    return "\n".join(lines) + "\n"


def svg(collected: dict) -> str:
    """A horizontal bar per row with a target (or skipped), on the 'percent of target' scale."""
    entries = [
        (bench, row)
        for bench, row in rows_of(collected)
        if row["target"] or (row["value"] is None and bench["status"] != "ran")
    ]
    label_w, bar_w, tail_w, row_h, top = 520, 360, 260, 26, 70
    width = label_w + bar_w + tail_w
    height = top + row_h * len(entries) + 50
    x0 = label_w
    scale = bar_w / BAR_CAP
    machine = collected["machine"]
    title = f"Symphony benchmarks, {machine['date'][:10]}" + (" (quick run)" if collected["quick"] else "")
    subtitle = f"{machine['cpu']}, {machine['cores']} cores; bar = value against target, 100% = just met"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="12" y="24" font-size="16" font-weight="bold">{escape(title)}</text>',
        f'<text x="12" y="44" fill="#555555">{escape(subtitle)}</text>',
    ]
    for index in range(1, len(entries), 2):  # banded rows first, so the grid and the bars lie over them
        parts.append(f'<rect x="0" y="{top + index * row_h}" width="{width}" height="{row_h}" fill="#f4f4f4"/>')
    for tick in (0.0, 0.5, 1.0, 1.5, 2.0):
        x = x0 + tick * scale
        stroke = "#222222" if tick == 1.0 else "#dddddd"
        parts.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{top + row_h * len(entries)}" '
                     f'stroke="{stroke}" stroke-width="{2 if tick == 1.0 else 1}"/>')  # fmt: skip
        label = "target" if tick == 1.0 else f"{tick * 100:.0f}%"
        parts.append(f'<text x="{x:.1f}" y="{top - 12}" text-anchor="middle" fill="#555555">{label}</text>')
    for index, (_, row) in enumerate(entries):
        y = top + index * row_h
        what = row["what"] if len(row["what"]) <= 78 else row["what"][:75] + "..."
        parts.append(f'<text x="{label_w - 10}" y="{y + 17}" text-anchor="end">{escape(what)}</text>')
        value_score = score(row["value"], row["target"])
        if value_score is None and row["value"] is None:
            reason = (row.get("note") or "not measured")[:60]
            parts.append(f'<text x="{x0 + 6}" y="{y + 17}" fill="#888888">{escape(reason)}</text>')
            continue
        if value_score is None:  # a target that is not a bound (e.g. an exact count): no scale, just the verdict
            colour = {True: "#2e8b57", False: "#c0392b"}.get(row["met"], "#555555")
            verdict = {True: "met", False: "missed"}.get(row["met"], "")
            text = f"{fmt(row['value'])} {row['unit']} (target {row['target']} {row['unit']}) {verdict}"
            parts.append(f'<text x="{x0 + bar_w + 14}" y="{y + 17}" fill="{colour}">{escape(text)}</text>')
            continue
        length = min(value_score, BAR_CAP) * scale
        colour = "#2e8b57" if row["met"] else "#c0392b"
        parts.append(f'<rect x="{x0}" y="{y + 5}" width="{length:.1f}" height="{row_h - 10}" fill="{colour}"/>')
        if value_score > BAR_CAP:
            tip = x0 + length
            parts.append(f'<path d="M{tip:.1f},{y + 4} l8,{row_h / 2 - 4} l-8,{row_h / 2 - 4} z" fill="{colour}"/>')
        unit = f" {row['unit']}" if row["unit"] else ""
        target = row["target"].replace("<=", "≤").replace(">=", "≥")
        text = f"{fmt(row['value'])}{unit} (target {target}{unit}): {value_score * 100:.0f}%"
        parts.append(f'<text x="{x0 + bar_w + 14}" y="{y + 17}">{escape(text)}</text>')
    legend_y = top + row_h * len(entries) + 28
    parts += [
        f'<rect x="12" y="{legend_y - 10}" width="12" height="12" fill="#2e8b57"/>',
        f'<text x="30" y="{legend_y}">met</text>',
        f'<rect x="70" y="{legend_y - 10}" width="12" height="12" fill="#c0392b"/>',
        f'<text x="88" y="{legend_y}">missed</text>',
        f'<text x="150" y="{legend_y}" fill="#555555">value/target for a floor (≥), target/value for a limit (≤); '
        f"bars stop at 200%</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
