"""Routing quality on a labelled file: accuracy, confusion between agents, "nothing fits" precision and recall.

A labelled file is JSON Lines (``{"task": "...", "agent": "translator"}``, with
``"agent": null`` for "nothing should take this"), a JSON array of such
objects, or CSV with a ``task,agent`` header (an empty agent: nothing fits).
Every task is ranked by content match's model over the enabled agents, built
once as the router builds it (profiles, examples, corrections, history), so a
file of a thousand tasks is scored without a thousand router round trips.

The report also gives the threshold this file calibrates: the highest score
that keeps 95% of its in-scope tasks, for ``SYMPHONY_ROUTING_MIN_SCORE``.
"""

import csv
import io
import json
import math
from dataclasses import dataclass, field

NOTHING = "(nothing fits)"
MAX_ROWS = 5000
KEEP_LOSS = 0.05  # the calibrated threshold keeps all but this share of in-scope tasks


class LabelledFileError(ValueError):
    """The file cannot be read as labelled tasks; the message says where and why."""


@dataclass
class Row:
    task: str
    expected: str | None
    ranked_first: str | None = None
    chosen: str | None = None
    score: float = 0.0

    @property
    def right(self) -> bool:
        return self.chosen == self.expected


@dataclass
class Report:
    rows: list[Row]
    agents: list[str]
    unknown_agents: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def in_scope(self) -> list[Row]:
        return [row for row in self.rows if row.expected is not None]

    @property
    def off_topic(self) -> list[Row]:
        return [row for row in self.rows if row.expected is None]

    @property
    def accuracy(self) -> float | None:
        return _share(sum(row.right for row in self.rows), len(self.rows))

    @property
    def ranking_accuracy(self) -> float | None:
        """In-scope tasks whose right agent ranked first, whatever the threshold said."""
        rows = self.in_scope
        return _share(sum(row.ranked_first == row.expected for row in rows), len(rows))

    @property
    def nothing_fits_precision(self) -> float | None:
        refused = [row for row in self.rows if row.chosen is None]
        return _share(sum(row.expected is None for row in refused), len(refused))

    @property
    def nothing_fits_recall(self) -> float | None:
        rows = self.off_topic
        return _share(sum(row.chosen is None for row in rows), len(rows))

    @property
    def in_scope_refused(self) -> float | None:
        rows = self.in_scope
        return _share(sum(row.chosen is None for row in rows), len(rows))

    @property
    def calibrated_threshold(self) -> float | None:
        """The highest threshold that refuses at most 5% of the in-scope tasks ranked right."""
        scores = sorted(row.score for row in self.in_scope if row.ranked_first == row.expected)
        # Rounded down, so the threshold printed still keeps the task it was read from.
        return math.floor(scores[int(len(scores) * KEEP_LOSS)] * 10_000) / 10_000 if scores else None

    def confusion(self) -> tuple[list[str], list[list[int]]]:
        """Labels (agents, then "nothing fits") and counts[expected][chosen]."""
        labels = sorted({*(r.expected for r in self.rows if r.expected), *(r.chosen for r in self.rows if r.chosen)})
        labels.append(NOTHING)
        index = {label: i for i, label in enumerate(labels)}
        counts = [[0] * len(labels) for _ in labels]
        for row in self.rows:
            counts[index[row.expected or NOTHING]][index[row.chosen or NOTHING]] += 1
        return labels, counts

    def mistakes(self) -> list[Row]:
        return [row for row in self.rows if not row.right]

    def as_dict(self) -> dict:
        labels, counts = self.confusion()
        return {
            "tasks": len(self.rows),
            "in_scope": len(self.in_scope),
            "off_topic": len(self.off_topic),
            "accuracy": self.accuracy,
            "ranking_accuracy": self.ranking_accuracy,
            "nothing_fits_precision": self.nothing_fits_precision,
            "nothing_fits_recall": self.nothing_fits_recall,
            "in_scope_refused": self.in_scope_refused,
            "calibrated_threshold": self.calibrated_threshold,
            "unknown_agents": self.unknown_agents,
            "note": self.note,
            "confusion": {"labels": labels, "counts": counts},
            "mistakes": [
                {"task": r.task, "expected": r.expected, "chosen": r.chosen, "score": round(r.score, 4)}
                for r in self.mistakes()
            ],
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _label(value, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LabelledFileError(f"{where}: 'agent' must be an agent's name or null, not {type(value).__name__}.")
    return value.strip() or None


def _from_object(item, where: str) -> tuple[str, str | None]:
    if not isinstance(item, dict):
        raise LabelledFileError(f'{where}: expected an object like {{"task": "...", "agent": "name"}}.')
    task = item.get("task", item.get("query"))
    if not isinstance(task, str) or not task.strip():
        raise LabelledFileError(f"{where}: 'task' must be non-empty text.")
    if "agent" not in item:
        raise LabelledFileError(f"{where}: 'agent' is missing (use null for \"nothing should take this\").")
    return task.strip(), _label(item["agent"], where)


def parse_labelled(text: str) -> list[tuple[str, str | None]]:
    """(task, expected agent name or None) per line of a JSON Lines, JSON array or CSV labelled file."""
    stripped = text.strip()
    if not stripped:
        raise LabelledFileError("The file is empty: give one labelled task per line.")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise LabelledFileError(f"Not valid JSON: {exc}") from None
        rows = [_from_object(item, f"item {n}") for n, item in enumerate(items, start=1)]
    elif stripped.startswith("{"):
        rows = []
        for n, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelledFileError(f"line {n}: not valid JSON: {exc}") from None
            rows.append(_from_object(item, f"line {n}"))
    else:
        reader = csv.DictReader(io.StringIO(stripped))
        if not reader.fieldnames or not {"task", "agent"} <= {f.strip() for f in reader.fieldnames}:
            raise LabelledFileError("A CSV file needs a header row with the columns task and agent.")
        rows = []
        for n, record in enumerate(reader, start=2):
            record = {(k or "").strip(): v for k, v in record.items()}
            rows.append(_from_object({"task": record.get("task"), "agent": record.get("agent")}, f"line {n}"))
    if not rows:
        raise LabelledFileError("The file holds no labelled tasks.")
    if len(rows) > MAX_ROWS:
        raise LabelledFileError(f"The file holds {len(rows)} tasks; evaluate at most {MAX_ROWS} at a time.")
    return rows


def evaluate(labelled: list[tuple[str, str | None]], router) -> Report:
    """Rank every task with the router's content model and compare with its label."""
    model, note = router.content_model()
    from routing.models import AgentConfig

    names = dict(AgentConfig.objects.filter(enabled=True).values_list("pk", "name"))
    known = set(names.values())
    unknown = sorted({label for _, label in labelled if label is not None and label not in known})
    rows = []
    for task, expected in labelled:
        row = Row(task, expected)
        ranking = model.rank(task) if names else []
        if ranking:
            top = ranking[0]
            row.ranked_first, row.score = names[top.key], top.score
            row.chosen = row.ranked_first if top.score >= model.threshold(top.key) else None
        rows.append(row)
    return Report(rows, sorted(known), unknown, note)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def report_text(report: Report) -> str:
    """The report as the CLI prints it: the figures, the confusion matrix and the mistakes."""
    lines = [
        f"{len(report.rows)} tasks ({len(report.in_scope)} in scope, {len(report.off_topic)} for nothing) "
        f"over {len(report.agents)} enabled agents",
        f"accuracy {_pct(report.accuracy)}; right agent ranked first {_pct(report.ranking_accuracy)}",
        f"nothing fits: precision {_pct(report.nothing_fits_precision)}, recall {_pct(report.nothing_fits_recall)}, "
        f"in-scope tasks refused {_pct(report.in_scope_refused)}",
        f"threshold this file calibrates (keeps 95% of in-scope): {report.calibrated_threshold}",
    ]
    if report.note:
        lines.append(f"note: {report.note}")
    if report.unknown_agents:
        lines.append(f"labels naming no enabled agent: {', '.join(report.unknown_agents)}")
    labels, counts = report.confusion()
    width = max(len(label) for label in labels)
    lines += ["", "confusion (rows: expected, columns: chosen):", " " * width + " " + " ".join(f"{i:>4}" for i in
              range(1, len(labels) + 1))]  # fmt: skip
    for n, (label, row) in enumerate(zip(labels, counts, strict=True), start=1):
        lines.append(f"{label:>{width}} " + " ".join(f"{c or '.':>4}" for c in row) + f"  ({n})")
    mistakes = report.mistakes()
    if mistakes:
        lines += ["", f"mistakes ({len(mistakes)}):"]
        lines += [f"  {r.expected or NOTHING} -> {r.chosen or NOTHING} ({r.score:.2f}): {r.task[:100]}"
                  for r in mistakes]  # fmt: skip
    return "\n".join(lines)
