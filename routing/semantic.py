"""Semantic relevance: how close in meaning a task is to each agent (the lexical model beside it).

Each agent is a set of texts embedded once (``routing.vectors``): its profile
(role and description, each capability line, each tag), its example tasks, the
tasks operators corrected to it, and the tasks it completed (history, counted
at a discount since users wrote it, not the operator). A query's similarity to
an agent blends its cosine to the agent's closest text with its cosine to the
mean of all of them; a correction away from an agent is a negative example
that pulls the agent's score down for tasks very like it. The lexical model
(``routing.relevance``) is ranked beside it: its shared words are shown in each
candidate's note, and ``LEXICAL_WEIGHT`` of its squashed score is added (tuned
to 0 on the dev data: any weight lowered accuracy there).

"Nothing fits" is a threshold on the score. The global one was calibrated on
the dev split of ``bench/routing_accuracy.py`` (the highest that kept 96% of
in-scope tasks). An agent with enough examples, corrections and history gets
its own: shifted by how much higher (a narrow agent) or lower (a broad one) its
own tasks score against the rest of it, leave-one-out, than the typical agent's
do, so the same threshold does not refuse a broad agent's tasks and let
anything near a narrow one through.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from routing.embeddings import ModelUnavailable, encoder
from routing.relevance import AgentProfile, Relevance, RelevanceModel
from routing.text import analyse
from routing.vectors import vectors

logger = logging.getLogger(__name__)

# Tuned on the dev split of bench/routing_accuracy.py (its --tune prints the search).
BEST_SHARE = 0.3  # similarity = BEST_SHARE * closest text + (1 - BEST_SHARE) * the agent's centroid
HISTORY_DISCOUNT = 0.9  # a history text's cosine counts for this share of an operator-written one
LEXICAL_WEIGHT = 0.0  # score = similarity + LEXICAL_WEIGHT * lexical / (1 + lexical)
NEGATIVE_FLOOR = 0.55  # a query closer than this to a task corrected away from an agent ...
NEGATIVE_WEIGHT = 1.0  # ... loses this much per unit of cosine above the floor
DEFAULT_MIN_SCORE = 0.201  # dev split: the highest that kept 96% of in-scope queries (examples profiles)
CALIBRATION_MIN_TEXTS = 8  # own examples + corrections + history before an agent gets its own threshold
CALIBRATION_PRIOR = 8  # texts' worth of weight the global threshold keeps against the agent's own
CALIBRATION_QUANTILE = 0.5  # an agent's own score: the median leave-one-out score of its own tasks
CALIBRATION_SHIFT = 0.5  # its threshold moves this share of how far its own score is from the typical agent's

KIND_PROFILE, KIND_EXAMPLE, KIND_CORRECTION, KIND_HISTORY = "profile", "example", "correction", "history"


@dataclass(frozen=True)
class SemanticRelevance(Relevance):
    similarity: float = 0.0
    lexical: float = 0.0
    threshold: float = 0.0
    nearest: str = ""  # the agent text the query is closest to
    nearest_kind: str = ""


def profile_texts(profile: AgentProfile) -> list[tuple[str, str]]:
    """(kind, text) for everything an agent is compared on, operator-written first."""
    texts = []
    head = ": ".join(part for part in (profile.role or profile.name, profile.description) if part)
    texts.append((KIND_PROFILE, head))
    texts += [(KIND_PROFILE, capability) for capability in profile.capabilities]
    # Each tag on its own too: "alt text" pulls a short task toward its agent more than a long line does.
    texts += [(KIND_PROFILE, tag) for tag in profile.expertise]
    texts += [(KIND_EXAMPLE, text) for text in profile.examples]
    texts += [(KIND_CORRECTION, text) for text in profile.corrections]
    texts += [(KIND_HISTORY, text) for text in profile.history]
    seen, unique = set(), []
    for kind, text in texts:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            unique.append((kind, text))
    return unique


class _Agent:
    __slots__ = ("profile", "kinds", "texts", "matrix", "weights", "centroid", "negatives", "own_score", "own_count")

    def __init__(self, profile: AgentProfile):
        import numpy as np

        self.profile = profile
        pairs = profile_texts(profile)
        self.kinds = [kind for kind, _ in pairs]
        self.texts = [text for _, text in pairs]
        self.matrix = vectors(self.texts) if self.texts else np.zeros((0, 0), dtype=np.float32)
        self.weights = np.array([HISTORY_DISCOUNT if k == KIND_HISTORY else 1.0 for k in self.kinds], np.float32)
        self.centroid = _unit(self.matrix.mean(axis=0)) if self.texts else None
        negatives = [text for text in dict.fromkeys(profile.negatives) if text.strip()]
        self.negatives = vectors(negatives) if negatives else None
        self.own_score, self.own_count = self._own_score()

    def similarity(self, query_vector) -> tuple[float, int]:
        """How close the query is to this agent (its closest text and its centroid), and that closest text."""
        if not len(self.texts):
            return 0.0, -1
        cosines = (self.matrix @ query_vector) * self.weights
        nearest = int(cosines.argmax())
        score = BEST_SHARE * float(cosines[nearest]) + (1 - BEST_SHARE) * float(self.centroid @ query_vector)
        if self.negatives is not None:
            against = float((self.negatives @ query_vector).max())
            score -= NEGATIVE_WEIGHT * max(0.0, against - NEGATIVE_FLOOR)
        return score, nearest

    def _own_score(self) -> tuple[float | None, int]:
        """How its own tasks score against the rest of it (leave-one-out, at CALIBRATION_QUANTILE), and how
        many there are; None when too few to say (examples, corrections and history count)."""
        import numpy as np

        own = [i for i, kind in enumerate(self.kinds) if kind != KIND_PROFILE]
        if len(own) < CALIBRATION_MIN_TEXTS:
            return None, len(own)
        cosines = (self.matrix[own] @ self.matrix.T) * self.weights
        total = self.matrix.sum(axis=0)
        scores = []
        for row, index in enumerate(own):  # each own task scored against the agent without it
            best = float(np.delete(cosines[row], index).max())
            centroid = _unit(total - self.matrix[index])
            scores.append(BEST_SHARE * best + (1 - BEST_SHARE) * float(centroid @ self.matrix[index]))
        return float(np.quantile(scores, CALIBRATION_QUANTILE)), len(own)


def _unit(vector):
    import numpy as np

    return vector / max(float(np.linalg.norm(vector)), 1e-12)


@lru_cache(maxsize=256)  # about 20 MB at most with 50 history texts an agent
def _agent(profile: AgentProfile) -> _Agent:
    """An agent's vectors, centroid and own score, kept while its profile (history included) is unchanged."""
    return _Agent(profile)


def calibrated_thresholds(agents: Sequence[_Agent], min_score: float) -> list[float]:
    """Each agent's "nothing fits" threshold: the global one, shifted for an agent with enough own tasks by
    how much higher or lower they score against it than the typical agent's do against theirs."""
    import statistics

    known = [a.own_score for a in agents if a.own_score is not None]
    if not known:
        return [min_score] * len(agents)
    typical = statistics.median(known)
    thresholds = []
    for agent in agents:
        if agent.own_score is None:
            thresholds.append(min_score)
            continue
        weight = agent.own_count / (agent.own_count + CALIBRATION_PRIOR)
        thresholds.append(min_score + weight * CALIBRATION_SHIFT * (agent.own_score - typical))
    return thresholds


class SemanticRelevanceModel:
    """The lexical model's interface (``rank``, ``best``, ``min_score``), scored by meaning and words together."""

    def __init__(self, profiles: Sequence[AgentProfile], *, min_score: float = DEFAULT_MIN_SCORE):
        self.min_score = min_score
        encoder()  # ModelUnavailable here, before anything is ranked, when the model cannot be loaded
        self.lexical = RelevanceModel(profiles)
        self._agents = [_agent(profile) for profile in profiles]
        self._thresholds = calibrated_thresholds(self._agents, min_score)

    def threshold(self, key) -> float:
        pairs = zip(self._agents, self._thresholds, strict=True)
        return next((threshold for agent, threshold in pairs if agent.profile.key == key), self.min_score)

    def rank(self, query: str) -> list[SemanticRelevance]:
        """Every agent with its score for ``query``, best first; ties keep the order the profiles were given in."""
        if not any(analyse(query)):  # no query, or only filler words ("a", "please"): nothing fits
            return [SemanticRelevance(key=a.profile.key, score=0.0, matched=(), threshold=t)
                    for a, t in zip(self._agents, self._thresholds, strict=True)]  # fmt: skip
        query_vector = vectors([query], store=False)[0]
        lexical = {r.key: r for r in self.lexical.rank(query)}
        scored = []
        for position, (agent, threshold) in enumerate(zip(self._agents, self._thresholds, strict=True)):
            similarity, nearest = agent.similarity(query_vector)
            words = lexical[agent.profile.key]
            score = similarity + LEXICAL_WEIGHT * words.score / (1.0 + words.score)
            relevance = SemanticRelevance(
                key=agent.profile.key,
                score=score,
                matched=words.matched,
                similarity=similarity,
                lexical=words.score,
                threshold=threshold,
                nearest=agent.texts[nearest] if nearest >= 0 else "",
                nearest_kind=agent.kinds[nearest] if nearest >= 0 else "",
            )
            scored.append((-score, position, relevance))
        scored.sort(key=lambda item: (item[0], item[1]))
        return [relevance for _, _, relevance in scored]

    def best(self, query: str) -> SemanticRelevance | None:
        """The best-scoring agent, or None when it does not reach its threshold ("nothing here fits")."""
        ranking = self.rank(query)
        if not ranking or ranking[0].score < ranking[0].threshold:
            return None
        return ranking[0]


_warned: set[str] = set()


def relevance_model(profiles: Sequence[AgentProfile]) -> tuple["SemanticRelevanceModel | RelevanceModel", str]:
    """The content-match model ``SYMPHONY_RELEVANCE`` names, and a note when it fell back to lexical.

    ``SYMPHONY_ROUTING_MIN_SCORE``, when set, replaces the chosen model's calibrated threshold.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    backend = settings.SYMPHONY_RELEVANCE
    min_score = settings.SYMPHONY_ROUTING_MIN_SCORE
    if backend not in ("semantic", "lexical"):
        raise ImproperlyConfigured(f"SYMPHONY_RELEVANCE is {backend!r}; use 'semantic' or 'lexical'.")
    if backend == "semantic":
        try:
            if min_score is None:
                return SemanticRelevanceModel(profiles), ""
            return SemanticRelevanceModel(profiles, min_score=min_score), ""
        except ModelUnavailable as exc:
            if str(exc) not in _warned:
                _warned.add(str(exc))
                logger.warning("Semantic routing is off, content match uses words only: %s", exc)
            note = "words only: the semantic model is not installed"
    else:
        note = ""
    if min_score is None:
        return RelevanceModel(profiles), note
    return RelevanceModel(profiles, min_score=min_score), note
