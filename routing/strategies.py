"""The five routing strategies: each scores the candidate agents for one task and
picks one, with a one-line reason.

A strategy never chooses a disabled agent (they are not candidates). It
prefers agents with a free slot; when every agent that fits is at its
``max_concurrency`` it still picks the best of them, says so, and the execution
waits in the queue for a slot rather than being refused.
"""

import re
from collections.abc import Callable, Sequence

from django.utils.module_loading import import_string

from routing.decisions import Candidate, RouteRequest, RoutingDecision, RoutingStrategy
from routing.relevance import AgentProfile
from routing.semantic import relevance_model

WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _rotation_key(candidate: Candidate) -> tuple:
    """Least recently chosen first: the order round robin walks, and the last tie-breaker elsewhere."""
    routed = candidate.agent.last_routed_at
    return (routed is not None, routed.timestamp() if routed else 0.0, candidate.agent.pk)


def _load_key(candidate: Candidate) -> tuple:
    agent = candidate.agent
    return (candidate.load.utilisation(agent.max_concurrency), candidate.load.running, *_rotation_key(candidate))


def _choose(strategy: str, ranked: list[Candidate], fitting: list[Candidate], why, nothing: str) -> RoutingDecision:
    free = [candidate for candidate in fitting if not candidate.saturated]
    if free:
        return RoutingDecision(strategy, free[0].agent, why(free[0]), ranked)
    if fitting:
        chosen = fitting[0]
        reason = f"{why(chosen)}; every agent that fits is at capacity, so it waits for a slot"
        return RoutingDecision(strategy, chosen.agent, reason, ranked)
    return RoutingDecision(strategy, None, nothing, ranked)


# Round robin ------------------------------------------------------------------------------


def route_round_robin(request: RouteRequest, candidates: Sequence[Candidate], **_) -> RoutingDecision:
    """The agent chosen least recently (by any process): fair across processes and restarts."""
    ranked = sorted(candidates, key=_rotation_key)
    for position, candidate in enumerate(ranked, start=1):
        candidate.score = float(len(ranked) - position + 1)
        candidate.note = "never chosen yet" if candidate.agent.last_routed_at is None else "in rotation"
    return _choose(
        RoutingStrategy.ROUND_ROBIN,
        ranked,
        ranked,
        lambda c: f"{c.agent.name} is next in the rotation",
        "no enabled agent to rotate through",
    )


# Capability match ---------------------------------------------------------------------------


def _tag(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in WORD.findall(str(text)))


def agent_tags(agent) -> set[tuple[str, ...]]:
    tags = set()
    for capability in agent.capabilities or []:
        if isinstance(capability, str):
            tags.add(_tag(capability))
            continue
        if isinstance(capability, dict):
            if capability.get("name"):
                tags.add(_tag(capability["name"]))
            tags.update(_tag(tag) for tag in capability.get("expertise") or [])
    return {tag for tag in tags if tag}


def _tag_match(wanted: tuple[str, ...], offered: set[tuple[str, ...]]) -> float:
    """1 for the same tag, 0.5 when one tag's words all appear in the other ("sql" in "sql tuning")."""
    if wanted in offered:
        return 1.0
    words = set(wanted)
    if any(words <= set(tag) or set(tag) <= words for tag in offered):
        return 0.5
    return 0.0


def route_by_capability(request: RouteRequest, candidates: Sequence[Candidate], **_) -> RoutingDecision:
    """Task tags against agent capabilities: the share of tags an agent covers; ties go to the less loaded."""
    wanted = [tag for tag in (_tag(t) for t in request.tags) if tag]
    derived = not wanted
    if derived:  # an untagged task is matched on the words of its query
        wanted = [(word,) for word in dict.fromkeys(_tag(request.text)) if len(word) > 2]
    for candidate in candidates:
        offered = agent_tags(candidate.agent)
        matches = {" ".join(tag): _tag_match(tag, offered) for tag in wanted}
        hits = [tag for tag, value in matches.items() if value]
        candidate.score = sum(matches.values()) / len(wanted) if wanted and not derived else sum(matches.values())
        candidate.note = f"matches {', '.join(hits)}" if hits else "no matching capability"
    ranked = sorted(candidates, key=lambda c: (-c.score, *_load_key(c)))
    source = "query words" if derived else "tags"
    return _choose(
        RoutingStrategy.CAPABILITY_MATCH,
        ranked,
        [candidate for candidate in ranked if candidate.score > 0],
        lambda c: f"{c.agent.name} has the best capability match for the task's {source} ({c.note})",
        f"no agent has a capability matching the task's {source}",
    )


# Content match --------------------------------------------------------------------------------


def capability_lines(capabilities) -> tuple[str, ...]:
    """One line per capability, "name: tag, tag": how the semantic model reads an agent's capabilities."""
    lines = []
    for capability in capabilities or []:
        if isinstance(capability, str):
            lines.append(capability)
        elif isinstance(capability, dict):
            tags = ", ".join(str(tag) for tag in capability.get("expertise") or [])
            lines.append(": ".join(part for part in (str(capability.get("name") or ""), tags) if part))
    return tuple(line for line in lines if line.strip())


def agent_profile(agent, history: Sequence[str] = (), corrections: tuple = ((), ())) -> AgentProfile:
    expertise = tuple(" ".join(tag) for tag in agent_tags(agent))
    return AgentProfile(
        key=agent.pk,
        name=agent.name,
        role=agent.role or "",
        description=agent.description or "",
        expertise=expertise,
        examples=tuple(str(example) for example in agent.example_tasks or []),
        history=tuple(history),
        corrections=tuple(corrections[0]),
        negatives=tuple(corrections[1]),
        capabilities=capability_lines(agent.capabilities),
    )


def content_model(agents: Sequence, history: dict | None = None, corrections: dict | None = None):
    """The relevance model over ``agents`` (``SYMPHONY_RELEVANCE``), and a note when it fell back to words."""
    history, corrections = history or {}, corrections or {}
    return relevance_model([agent_profile(a, history.get(a.pk, ()), corrections.get(a.pk, ((), ()))) for a in agents])


def _relevance_note(relevance) -> str:
    """Each candidate's evidence: its similarity and closest text (semantic), and the words it shares."""
    if not hasattr(relevance, "similarity"):
        return f"relevant terms: {', '.join(relevance.matched)}" if relevance.matched else "nothing in common"
    if not relevance.nearest:
        return f"score 0 (threshold {relevance.threshold:.2f}): the query has no words to compare"
    words = [term for term in relevance.matched if " " not in term][:6]  # pairs repeat their words
    shared = f"shared words: {', '.join(words)}" if words else "no shared words"
    nearest = relevance.nearest if len(relevance.nearest) <= 80 else relevance.nearest[:77] + "..."
    return (
        f"score {relevance.score:.2f} (threshold {relevance.threshold:.2f}): similarity {relevance.similarity:.2f}, "
        f'closest to its {relevance.nearest_kind} "{nearest}"; {shared}'
    )


def route_by_content(
    request: RouteRequest,
    candidates: Sequence[Candidate],
    *,
    history: dict | None = None,
    corrections: dict | None = None,
    **_,
) -> RoutingDecision:
    """The query's relevance to each agent: by meaning and by words (``SYMPHONY_RELEVANCE``), refusing when none fits.

    Agents are compared on role, description, expertise, examples, operators' corrections and
    completed tasks. "Nothing fits" when the best agent's score is under its threshold.
    """
    by_key = {candidate.agent.pk: candidate for candidate in candidates}
    model, fallback_note = content_model([c.agent for c in candidates], history, corrections)
    ranking = model.rank(request.text) if candidates else []
    for relevance in ranking:
        candidate = by_key[relevance.key]
        candidate.score = relevance.score
        candidate.note = _relevance_note(relevance)
    ranked = sorted(candidates, key=lambda c: (-c.score, *_load_key(c)))
    fits = bool(ranking) and ranking[0].score >= model.threshold(ranking[0].key)
    fitting = [c for c in ranked if fits and c.score >= model.threshold(c.agent.pk)]
    suffix = f" ({fallback_note})" if fallback_note else ""
    nearest = ", ".join(f"{c.agent.name} {c.score:.2f}" for c in ranked[:3])

    def why(chosen: Candidate) -> str:
        runner_up = next((c for c in ranked if c is not chosen), None)
        ahead = f"; next: {runner_up.agent.name} at {runner_up.score:.2f}" if runner_up else ""
        return f"{chosen.agent.name} is the most relevant to the query ({chosen.note}){ahead}{suffix}"

    return _choose(
        RoutingStrategy.CONTENT_MATCH,
        ranked,
        fitting,
        why,
        "nothing here fits: the query is unlike every agent's role, expertise, examples and past tasks"
        + (f"; nearest: {nearest}, each under its threshold" if ranked else "")
        + suffix,
    )


# Load balanced --------------------------------------------------------------------------------


def route_by_load(request: RouteRequest, candidates: Sequence[Candidate], **_) -> RoutingDecision:
    """The least busy agent: running and queued executions relative to its capacity."""
    ranked = sorted(candidates, key=_load_key)
    for candidate in ranked:
        agent, load = candidate.agent, candidate.load
        candidate.score = round(1.0 - min(load.utilisation(agent.max_concurrency), 1.0), 4)
        capacity = agent.max_concurrency or "no limit"
        candidate.note = f"{load.running} running, {load.queued} queued, capacity {capacity}"
    return _choose(
        RoutingStrategy.LOAD_BALANCED,
        ranked,
        ranked,
        lambda c: f"{c.agent.name} is the least busy ({c.note})",
        "no enabled agent to balance over",
    )


# Custom --------------------------------------------------------------------------------------


def load_custom(path: str) -> Callable:
    try:
        return import_string(path)
    # TypeError and ValueError: how import_module refuses a relative or empty module name.
    except (ImportError, TypeError, ValueError) as exc:
        raise ValueError(f"The custom router {path!r} cannot be loaded: {exc}") from exc


def route_custom(
    request: RouteRequest, candidates: Sequence[Candidate], *, custom: Callable | None = None, **_
) -> RoutingDecision:
    """A callable ``f(request, candidates)`` returning an agent (config, id or name) or ``(agent, reason)``."""
    if custom is None:
        return RoutingDecision(
            RoutingStrategy.CUSTOM, None, "no custom router: set SYMPHONY_CUSTOM_ROUTER or pass one", list(candidates)
        )
    name = getattr(custom, "__qualname__", repr(custom))
    try:
        answer = custom(request, list(candidates))
    except Exception as exc:  # an operator's code: its failure is a routing outcome, not a crash
        reason = f"the custom router {name} failed: {type(exc).__name__}: {exc}"
        return RoutingDecision(RoutingStrategy.CUSTOM, None, reason, list(candidates))
    answer, reason = answer if isinstance(answer, tuple) else (answer, "")
    for candidate in candidates:
        if answer in (candidate.agent, candidate.agent.pk, candidate.agent.name):
            candidate.score = 1.0
            candidate.note = "chosen by the custom router"
            reason = reason or f"{name} chose {candidate.agent.name}"
            return RoutingDecision(RoutingStrategy.CUSTOM, candidate.agent, reason, list(candidates))
    what = "no agent" if answer is None else f"{answer!r}, which is not an enabled agent"
    return RoutingDecision(RoutingStrategy.CUSTOM, None, reason or f"{name} chose {what}", list(candidates))


# Fallbacks ------------------------------------------------------------------------------------

# The strategies whose fallback walks the rotation, so the router locks it as round robin does.
ROTATING_FALLBACKS = frozenset({RoutingStrategy.CONTENT_MATCH, RoutingStrategy.CUSTOM})


def fall_back(decision: RoutingDecision) -> RoutingDecision:
    """An agent for a task no agent fits, as the seed framework's router gives one; marked ``fallback``.

    Capability match takes its own best-ranked agent (best score, even 0; ties by load, then
    rotation, then id: the order it ranks every task by); content match and a custom router
    that chose nobody fall back to round robin. A free agent is preferred to one at capacity.
    The decision is left as it is when it chose an agent or had no candidate at all.
    """
    if decision.chosen is not None or not decision.candidates:
        return decision
    if decision.strategy == RoutingStrategy.CAPABILITY_MATCH:
        order, how = decision.candidates, "the best-scoring, least busy agent"
    else:
        order, how = sorted(decision.candidates, key=_rotation_key), "round robin"
    free = [candidate for candidate in order if not candidate.saturated]
    chosen = (free or order)[0]
    reason = f"{decision.reason}; fell back to {how}: {chosen.agent.name}"
    if not free:
        reason += ", which is at capacity, so it waits for a slot"
    return RoutingDecision(decision.strategy, chosen.agent, reason, decision.candidates, fallback=True)


STRATEGIES: dict[str, Callable[..., RoutingDecision]] = {
    RoutingStrategy.ROUND_ROBIN: route_round_robin,
    RoutingStrategy.CAPABILITY_MATCH: route_by_capability,
    RoutingStrategy.CONTENT_MATCH: route_by_content,
    RoutingStrategy.LOAD_BALANCED: route_by_load,
    RoutingStrategy.CUSTOM: route_custom,
}
