"""Turning task queries and agent profiles into comparable terms.

Routing compares a one-line query with a handful of short profile texts, so the
analysis is tuned for recall: stopwords (including the filler words people put
in requests, "please help me ...") are dropped, and a compact suffix-stripping
stemmer folds the forms a paraphrase tends to use (translate / translation /
translator, visualise / visualization) onto one stem. It is written here rather
than taken from a stemming package because routing needs only conflation, not a
linguistically exact stem, and ~40 lines cost less than a new dependency.
"""

import re
import unicodedata
from collections import Counter
from functools import lru_cache
from itertools import chain

# Letters and digits only: underscores and hyphens split, so "code_review" and "code-review" read as two words.
_WORD = re.compile(r"[^\W_]+")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below between both
    but by did do does doing down during each few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just me more most my myself no nor not of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which while who whom why will
    with you your yours yourself yourselves s t don can could would shall may might must ll re ve d m o y
    please pls help need needs want wants like get got make let us give tell know thanks thank hi hello hey someone
    something anything everything also really quick quickly able one im id ive youre whats thats
    """.split()
)

# British spellings are folded first so both spellings meet the same suffix rules below.
_BRITISH = (
    ("isations", "izations"), ("isation", "ization"), ("ising", "izing"), ("ised", "ized"), ("ises", "izes"),
    ("isers", "izers"), ("iser", "izer"), ("ise", "ize"), ("yse", "yze"), ("ysed", "yzed"), ("ysing", "yzing"),
)  # fmt: skip

# Specific suffixes before their tails ("izers" before "ers" before "s"); the replacement keeps families
# together (analysis / analyze / analyst -> "analy").
_SUFFIXES = (
    ("izations", ""), ("ization", ""), ("ytical", "y"), ("ically", ""), ("ytics", "y"), ("izing", ""),
    ("izers", ""), ("ingly", ""), ("ities", ""), ("ments", ""), ("ysis", "y"), ("yses", "y"), ("ysts", "y"),
    ("ytic", "y"), ("izer", ""), ("izes", ""), ("ized", ""), ("ical", ""), ("ings", ""), ("ment", ""),
    ("ness", ""), ("ions", ""), ("ives", ""), ("able", ""), ("ible", ""), ("yzed", "y"), ("yzing", "y"),
    ("yze", "y"), ("yst", "y"), ("ize", ""), ("ion", ""), ("ive", ""), ("ity", ""), ("ing", ""), ("ers", ""),
    ("ors", ""), ("ies", "y"), ("ly", ""), ("er", ""), ("or", ""), ("ed", ""), ("es", ""), ("s", ""), ("e", ""),
    ("y", ""),
)  # fmt: skip
_MIN_STEM = 3
_KEEP_DOUBLE = frozenset("lsz")


def _strip_once(word: str) -> str:
    for suffix, replacement in _SUFFIXES:
        if not word.endswith(suffix):
            continue
        if suffix == "s" and word.endswith(("ss", "us", "is")):
            continue
        stem = word[: -len(suffix)] + replacement
        if len(stem) < _MIN_STEM:
            continue
        # "planning" and "planner" should meet "plan": undo the doubled consonant the suffix brought.
        if len(stem) > _MIN_STEM and stem[-1] == stem[-2] and stem[-1] not in _KEEP_DOUBLE and stem[-1] not in "aeiou":
            stem = stem[:-1]
        return stem
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A conflation key for ``word`` (lowercase); words with digits are kept whole ("q3", "s3", "2024")."""
    if not word.isalpha() or len(word) <= _MIN_STEM:
        return word
    for british, american in _BRITISH:
        if word.endswith(british):
            word = word[: -len(british)] + american
            break
    # Two rounds reach the root of stacked suffixes ("summaries" -> "summary" -> "summar").
    for _ in range(2):
        stripped = _strip_once(word)
        if stripped == word:
            break
        word = stripped
    return word


_ASCII_SEPARATORS = bytes.maketrans(
    bytes(c for c in range(128) if not chr(c).isalnum()), b" " * sum(not chr(c).isalnum() for c in range(128))
)
_TERM_OF: dict[str, str] = {}  # word -> stem, "" for a dropped word; the per-word work of every analysis
_TERM_OF_MAX = 200_000


def _words(text: str) -> list[str]:
    # Most text is ASCII, and a bytes translate + split is four times faster than the unicode regex.
    if text.isascii():
        return text.lower().encode().translate(_ASCII_SEPARATORS).decode().split()
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _term(word: str) -> str:
    term = "" if len(word) < 2 or word in STOPWORDS or word.isdigit() else stem(word)
    if len(_TERM_OF) >= _TERM_OF_MAX:
        _TERM_OF.clear()
    _TERM_OF[word] = term
    return term


@lru_cache(maxsize=16384)
def analyse(text: str) -> tuple[tuple[str, str], ...]:
    """``(stem, surface word)`` pairs for the content words of ``text``, in order."""
    pairs = [(_TERM_OF[w] if w in _TERM_OF else _term(w), w) for w in _words(text)]
    return tuple(pair for pair in pairs if pair[0])


@lru_cache(maxsize=1024)
def term_counts(texts: tuple[str, ...]) -> Counter:
    """How often each stem occurs in ``texts``, for bulk text such as an agent's whole history; shared, do not modify.

    Built from C-level passes (one split of the joined text, one set difference, one counted map), and cached
    whole, because a router rebuilds this for thousands of past queries that mostly have not changed.
    """
    joined = "\n".join(texts)
    words = _words(joined) if joined.isascii() else list(chain.from_iterable(map(_words, texts)))
    for word in set(words).difference(_TERM_OF):
        _term(word)
    counts = Counter(map(_TERM_OF.get, words))
    del counts[""], counts[None]  # dropped words, and any forgotten by a cache reset mid-way
    return counts


def phrase(first: str, second: str) -> str:
    """The term for two adjacent content words; the space keeps it apart from every unigram."""
    return f"{first} {second}"


def with_phrases(stems: list[str]) -> list[str]:
    """``stems`` followed by the phrase term of each adjacent pair."""
    return stems + [phrase(a, b) for a, b in zip(stems, stems[1:], strict=False)]


@lru_cache(maxsize=16384)
def trigrams(term: str) -> frozenset[str]:
    """Character trigrams of a padded term, for matching misspellings and unfolded morphology."""
    padded = f" {term} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))
