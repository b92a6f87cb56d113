"""Built-in demo agents: real work in visible steps, for trying Symphony out.

Each is a ``python`` agent: ``f(input_data, ctx)``, and declares the input it takes as a
JSON Schema (``input_schema``): an input that does not fit is refused at submit.
"""

import re
from collections import Counter

from routing.decisions import task_query

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have he her his i in is it its of on or she that the their "
    "them they this to was were will with you your we our not no so if then than there these those".split()
)


class DemoAgentError(Exception):
    """A failure the demo agents raise on purpose: transient, so it is retried.

    Symphony retries an exception only when it is transient: a timeout, a
    connection error, or one that carries ``retryable = True`` as this class
    does. Anything else (a ``ValueError`` from bad input, a ``TypeError``) fails
    at once; set ``retryable = False`` on an exception to say so explicitly.
    """

    retryable = True


def _syllables(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    count = len(groups) - (1 if word.lower().endswith("e") and len(groups) > 1 else 0)
    return max(1, count)


def text_statistics(input_data, ctx):
    """Statistics over ``input_data["text"]`` (else the task's query, as in the seed's examples):
    counts, top words and a readability score."""
    text = (input_data or {}).get("text") if isinstance(input_data, dict) else None
    if not isinstance(text, str) or not text.strip():
        text = task_query(input_data)
    if not text:
        raise ValueError('text_statistics needs {"text": "<some prose>"} or a query.')
    ctx.progress(5, "Tokenising")
    words = WORD.findall(text)
    sentences = max(1, len(SENTENCE_END.findall(text)) or 1)
    ctx.log(f"{len(words)} words in {sentences} sentences")
    ctx.progress(30, "Counting words")
    frequencies = Counter(w.lower() for w in words if w.lower() not in STOPWORDS)
    ctx.progress(60, "Measuring readability")
    syllables = sum(_syllables(w) for w in words)
    n_words = max(1, len(words))
    flesch = 206.835 - 1.015 * (n_words / sentences) - 84.6 * (syllables / n_words)
    ctx.progress(90, "Summarising")
    return {
        "characters": len(text),
        "words": len(words),
        "unique_words": len({w.lower() for w in words}),
        "sentences": sentences,
        "average_word_length": round(sum(map(len, words)) / n_words, 2),
        "top_words": frequencies.most_common(10),
        "flesch_reading_ease": round(flesch, 1),
    }


def slow_task(input_data, ctx):
    """Works through ``steps`` steps over ``seconds`` seconds, stopping promptly when cancelled."""
    input_data = input_data or {}
    seconds = float(input_data.get("seconds", 5))
    steps = int(input_data.get("steps", 5))
    if seconds < 0 or steps < 1:
        raise ValueError("slow_task needs seconds >= 0 and steps >= 1.")
    for number in range(1, steps + 1):
        ctx.progress(100 * (number - 1) / steps, f"Step {number} of {steps}")
        ctx.log(f"working on step {number}")
        if ctx.sleep(seconds / steps):
            return {"stopped_at_step": number}
    return {"steps": steps, "seconds": seconds}


def flaky_task(input_data, ctx):
    """Fails its first ``fail_attempts`` attempts (default 2), then succeeds."""
    fail_attempts = int((input_data or {}).get("fail_attempts", 2))
    ctx.progress(10, "Trying")
    if ctx.attempt <= fail_attempts:
        raise DemoAgentError(f"Attempt {ctx.attempt} fails on purpose ({fail_attempts} planned failures).")
    ctx.progress(100, "Succeeded")
    return {"succeeded_on_attempt": ctx.attempt}


DEMO_AGENTS = [
    {
        "name": "text-stats",
        "role": "Text analyst",
        "description": "Counts words and sentences, finds the most frequent words and scores readability.",
        "settings": {"path": "routing.agents.demo.text_statistics"},
        "capabilities": [{"name": "text analysis", "expertise": ["text", "statistics", "readability"]}],
        "example_tasks": ["How readable is this paragraph?", "Which words does this article use most?"],
        "input_schema": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1, "description": "The prose to analyse."},
                "query": {"type": "string", "minLength": 1, "description": "Analysed when there is no text."},
            },
            "anyOf": [{"required": ["text"]}, {"required": ["query"]}],
        },
    },
    {
        "name": "slow",
        "role": "Patient worker",
        "description": "Takes its time over a configurable number of steps; cancellable at any point.",
        "settings": {"path": "routing.agents.demo.slow_task"},
        "capabilities": [{"name": "waiting", "expertise": ["demo", "slow"]}],
        "example_tasks": ['{"seconds": 10, "steps": 5}'],
        "input_schema": {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "description": "How long it takes in all (default 5)."},
                "steps": {"type": "integer", "minimum": 1, "description": "In how many steps (default 5)."},
            },
        },
    },
    {
        "name": "flaky",
        "role": "Unreliable worker",
        "description": "Fails its first N attempts on purpose, to show retries.",
        "settings": {"path": "routing.agents.demo.flaky_task"},
        "capabilities": [{"name": "failing", "expertise": ["demo", "retry"]}],
        "example_tasks": ['{"fail_attempts": 2}'],
        "input_schema": {
            "type": "object",
            "properties": {
                "fail_attempts": {"type": "integer", "minimum": 0, "description": "Attempts that fail (default 2)."}
            },
        },
    },
]
