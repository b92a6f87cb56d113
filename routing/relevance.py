"""How well each agent fits a task query: the relevance model behind CONTENT_MATCH routing.

A BM25F-style scorer over each agent's profile fields, with IDF taken across
the agents so that a word every agent shares (``data``, ``text``) decides
nothing. Per query term, the evidence from each field is weighted (expertise >
role > operator examples > description > history), summed, saturated
(``x / (k + x)``) and multiplied by the term's IDF, normalised so that a term
only one agent has weighs 1 whatever the number of agents. A score is thus
roughly "how many distinctive query terms this agent covers", which is what
lets one absolute threshold say "nothing here fits" for 1 agent or 50.

Adjacent word pairs are terms too, so a shared phrase ("code review") counts
more than the same words apart. A query word that no agent uses may still
match an operator-written profile word by character trigrams (typos,
morphology the stemmer misses), discounted by the similarity.

History (queries of tasks an agent completed successfully) counts by how
often the term occurs in those queries, on a log scale: a few successes
shift an ambiguous query, hundreds do not drown the operator's own profile.

Weights and the default threshold were set on the dev split of the earlier
13-agent set of ``bench/routing_accuracy.py``; on its current 24-agent set the
semantic model (``routing.semantic``) is the default and this is the fallback.
"""

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from routing.text import analyse, phrase, term_counts, trigrams, with_phrases

# Field weights: how much one occurrence says about what an agent is for.
EXPERTISE_WEIGHT = 3.0
ROLE_WEIGHT = 2.0
EXAMPLE_WEIGHT = 1.2
DESCRIPTION_WEIGHT = 0.8
HISTORY_WEIGHT = 1.0
SATURATION = 1.2  # BM25's k1: a second occurrence adds less than the first
DESCRIPTION_LENGTH_NORM = 0.75  # BM25's b: long descriptions do not win by length
PHRASE_WEIGHT = 0.5  # a matched word pair adds this share on top of its two words
FUZZY_MIN_SIMILARITY = 0.5  # trigram Jaccard below this is a different word, not a typo
FUZZY_MIN_LENGTH = 5  # short words share trigrams by chance
DEFAULT_MIN_SCORE = 0.4  # dev split of bench/routing_accuracy.py: one distinctive word in a strong field


@dataclass(frozen=True)
class AgentProfile:
    key: int | str
    name: str
    role: str = ""
    description: str = ""
    expertise: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    corrections: tuple[str, ...] = ()  # tasks operators said should have come here: examples
    negatives: tuple[str, ...] = ()  # tasks operators said should not have: the semantic model's counter-examples
    capabilities: tuple[str, ...] = ()  # one line per capability, "name: tag, tag" (the semantic model's)


@dataclass(frozen=True)
class Relevance:
    key: int | str
    score: float
    matched: tuple[str, ...]


def _document_counts(texts: Iterable[str]) -> Counter:
    """In how many of ``texts`` each term occurs (a tag or an example counts once however often it repeats a word)."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(set(with_phrases([s for s, _ in analyse(text)])))
    return counts


class _AgentIndex:
    """One agent's profile as term counts per field."""

    __slots__ = ("profile", "expertise", "role", "examples", "history", "description", "description_length", "words")

    def __init__(self, profile: AgentProfile):
        self.profile = profile
        self.expertise = _document_counts(profile.expertise)
        # The config name ("sql-analyst") is often the most telling label an operator gave.
        self.role = _document_counts([profile.role, profile.name])
        self.examples = _document_counts(profile.examples + profile.corrections)
        # History is counted by word, without phrases: it is the bulk of the text and the weakest evidence.
        self.history = term_counts(tuple(profile.history))
        description = with_phrases([s for s, _ in analyse(profile.description)])
        self.description = Counter(description)
        self.description_length = len(description)
        # Operator-written words only: the typo fallback should not snap onto a word from some past query.
        self.words = {t for c in (self.expertise, self.role, self.examples) for t in c if " " not in t}

    def has(self, term: str) -> bool:
        return any(term in c for c in (self.expertise, self.role, self.examples, self.description, self.history))

    def evidence(self, term: str, average_description: float) -> float:
        length_ratio = self.description_length / average_description if average_description else 0.0
        description = self.description.get(term, 0) / (
            1 - DESCRIPTION_LENGTH_NORM + DESCRIPTION_LENGTH_NORM * length_ratio
        )
        return (
            EXPERTISE_WEIGHT * self.expertise.get(term, 0)
            + ROLE_WEIGHT * self.role.get(term, 0)
            + EXAMPLE_WEIGHT * self.examples.get(term, 0)
            + DESCRIPTION_WEIGHT * description
            + HISTORY_WEIGHT * math.log1p(self.history.get(term, 0))
        )


class RelevanceModel:
    """Scores agents against queries; build one per set of agent profiles and reuse it for many queries."""

    def __init__(self, profiles: Sequence[AgentProfile], *, min_score: float = DEFAULT_MIN_SCORE):
        self.min_score = min_score
        self._agents = [_AgentIndex(p) for p in profiles]
        lengths = [a.description_length for a in self._agents]
        self._average_description = sum(lengths) / len(lengths) if lengths else 0.0
        self._idf_cache: dict[str, float] = {}
        self._vocabulary: dict[str, frozenset[str]] | None = None

    def threshold(self, key) -> float:
        """The score an agent must reach to fit: one for all agents here."""
        return self.min_score

    def rank(self, query: str) -> list[Relevance]:
        """Every agent with its score for ``query``, best first; ties keep the order the profiles were given in."""
        query_terms = self._query_terms(query)
        scored = []
        for position, agent in enumerate(self._agents):
            contributions: dict[str, float] = {}
            for term, (surface, weight) in query_terms.items():
                evidence = agent.evidence(term, self._average_description)
                if evidence <= 0:
                    continue
                gain = weight * self._idf(term) * evidence / (SATURATION + evidence)
                contributions[surface] = contributions.get(surface, 0.0) + gain
            score = sum(contributions.values())
            matched = tuple(s for s, _ in sorted(contributions.items(), key=lambda item: -item[1]))
            scored.append((-score, position, Relevance(agent.profile.key, score, matched)))
        scored.sort(key=lambda item: (item[0], item[1]))
        return [relevance for _, _, relevance in scored]

    def best(self, query: str) -> Relevance | None:
        """The best-fitting agent, or None when no agent reaches ``min_score`` ("nothing here fits")."""
        ranking = self.rank(query)
        if not ranking or ranking[0].score < self.min_score:
            return None
        return ranking[0]

    def _query_terms(self, query: str) -> dict[str, tuple[str, float]]:
        """Query terms mapped to (the words to show for them, their weight); first occurrence wins."""
        pairs = list(analyse(query))
        found: dict[str, tuple[str, float]] = {}
        stems = []
        for term, surface in pairs:
            weight = 1.0
            if len(term) >= FUZZY_MIN_LENGTH and not self._df(term):
                term, weight = self._nearest_word(term)
            stems.append(term)
            if term and term not in found:
                found[term] = (surface, weight)
        surfaces = [surface for _, surface in pairs]
        for a, b, first, second in zip(stems, stems[1:], surfaces, surfaces[1:], strict=False):
            if a and b:
                found.setdefault(phrase(a, b), (f"{first} {second}", PHRASE_WEIGHT))
        return found

    def _nearest_word(self, term: str) -> tuple[str, float]:
        """The profile word most like an unknown ``term`` by trigram overlap, and the weight that match gets."""
        if self._vocabulary is None:
            words = sorted({w for a in self._agents for w in a.words})
            self._vocabulary = {w: trigrams(w) for w in words if len(w) >= FUZZY_MIN_LENGTH - 1}
        grams = trigrams(term)
        best, similarity = "", 0.0
        for word, word_grams in self._vocabulary.items():
            overlap = len(grams & word_grams)
            if not overlap:
                continue
            jaccard = overlap / len(grams | word_grams)
            if jaccard > similarity:
                best, similarity = word, jaccard
        if similarity < FUZZY_MIN_SIMILARITY:
            return "", 0.0
        # One typo costs a short word half its trigrams; the square root keeps a misspelt tag a real match.
        return best, math.sqrt(similarity)

    def _df(self, term: str) -> int:
        return sum(1 for agent in self._agents if agent.has(term))

    def _idf(self, term: str) -> float:
        """BM25 IDF across agents, divided by the IDF of a term only one agent has (so that one weighs 1)."""
        if term not in self._idf_cache:
            n = len(self._agents)
            df = self._df(term)
            rarest = math.log(1 + (n - 0.5) / 1.5)
            self._idf_cache[term] = math.log(1 + (n - df + 0.5) / (df + 0.5)) / rarest
        return self._idf_cache[term]
