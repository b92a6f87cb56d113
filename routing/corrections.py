"""Routing corrections: "this task should have gone to X", recorded and read back by every router.

A correction is an example for the agent it names and a negative for the agent
the router chose. Nothing is cached between decisions: each decision reads the
corrections of its candidates (one indexed query), and their vectors are
stored when the correction is made, so the next task on any worker is routed
with it.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from routing.models import AgentConfig, RoutingCorrection

# The corrections per agent a decision reads, most recent first (as examples, and as negatives).
CORRECTIONS_LIMIT = 200
QUERY_LIMIT = 4000  # characters of the query kept: the router reads no more of it


def routing_correct(
    *,
    query: str,
    correct: AgentConfig,
    chosen: AgentConfig | None = None,
    execution_id: int | None = None,
    by=None,
    note: str = "",
) -> RoutingCorrection:
    """Record that ``query`` should have gone to ``correct`` (not ``chosen``).

    ``ValidationError`` when it would teach nothing: no query, or ``correct`` is the agent chosen.
    """
    query = (query or "").strip()[:QUERY_LIMIT]
    problems = correction_problems(query, correct, chosen)
    if problems:
        raise ValidationError({"agent" if field == "correct" else field: message for field, message in problems})
    fields = {
        "query": query,
        "correct": correct,
        "chosen": chosen,
        "created_by": by if getattr(by, "is_authenticated", False) else None,
        "note": (note or "")[:500],
    }
    with transaction.atomic():
        if execution_id is not None:
            # One correction per run: saying it again, or naming another agent, replaces the last word.
            correction, _ = RoutingCorrection.objects.update_or_create(execution_id=execution_id, defaults=fields)
        else:
            same = RoutingCorrection.objects.filter(query=query, correct=correct, chosen=chosen, execution_id=None)
            correction = same.first() or RoutingCorrection.objects.create(**fields)
    _embed_now(query)
    return correction


def correction_problems(query: str, correct: AgentConfig, chosen: AgentConfig | None) -> list[tuple[str, str]]:
    """(field, message) for each reason a correction would teach nothing; the admin's form shows them too."""
    problems = []
    if not (query or "").strip():
        problems.append(("query", "A correction needs the task's query: there is nothing to learn from."))
    if chosen is not None and chosen.pk == correct.pk:
        problems.append(("correct", f"The task already went to {correct.name}; pick the agent it should have."))
    elif not correct.enabled:
        problems.append(("correct", f"{correct.name} is disabled: the router would not send it anything."))
    return problems


def _embed_now(query: str) -> None:
    """Store the query's vector now, so no router pays for it (skipped when the model is not installed)."""
    from routing.embeddings import ModelUnavailable
    from routing.vectors import vectors

    try:
        vectors([query])
    except ModelUnavailable:
        pass


def corrections_for(agent_ids: list[int], limit: int = CORRECTIONS_LIMIT) -> dict[int, tuple[list[str], list[str]]]:
    """Per agent: (queries corrected to it, queries corrected away from it), most recent first."""
    found: dict[int, tuple[list[str], list[str]]] = {agent_id: ([], []) for agent_id in agent_ids}
    if not agent_ids:
        return found
    rows = (
        RoutingCorrection.objects.filter(correct_id__in=agent_ids)
        .order_by("-id")
        .values_list("correct_id", "chosen_id", "query")[: limit * len(agent_ids)]
    )
    away = (
        RoutingCorrection.objects.filter(chosen_id__in=agent_ids)
        .order_by("-id")
        .values_list("correct_id", "chosen_id", "query")[: limit * len(agent_ids)]
    )
    for correct_id, _, query in rows:
        if len(found[correct_id][0]) < limit:
            found[correct_id][0].append(query)
    for _, chosen_id, query in away:
        if len(found[chosen_id][1]) < limit:
            found[chosen_id][1].append(query)
    return found
