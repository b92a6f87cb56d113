#!/usr/bin/env python
"""CONTENT_MATCH routing on a labelled set: semantic (meaning + words), lexical (words), the seed's substring count.

    .venv/bin/python bench/routing_accuracy.py                 # the test split; writes the JSON
    .venv/bin/python bench/routing_accuracy.py --split dev     # the split the weights and threshold were tuned on
    .venv/bin/python bench/routing_accuracy.py --tune          # search the semantic weights on dev, print the best

Data: bench/routing_data/*.json, 24 agents of overlapping domains, each with
72+ labelled in-scope queries (paraphrases sharing no word with the profile,
typos, short and long, several phrasings per intent) and 370 off-topic queries
whose right answer is "nothing here fits". Intents, not queries, are split
40/60 into dev and test with a fixed seed, so no phrasing of a test intent was
seen while tuning.

Reported, on the chosen split, for each model:

- top-1: the right agent ranked first (every in-scope query), for profiles of
  descriptions and capabilities alone, and with the 5 example tasks per agent;
- "nothing fits": the share of off-topic queries refused and of in-scope ones
  lost (refused) at the model's calibrated threshold, and precision/recall;
- history: accuracy as each agent gets 8 completed tasks (the data's history);
- corrections: accuracy on test after the dev split's misrouted queries are
  given as corrections (examples for the right agent, negatives for the wrong);
- timing: ranking one query among 50 agents (p50, the query embedded cold),
  model load, and the process's memory with the model and a 50-agent index.

The baseline is the seed's content match: count the agent's expertise tags and
role words that occur as substrings of the lowercased query, take the maximum,
ties to the first agent; it cannot answer "nothing fits".
"""

import argparse
import dataclasses
import gc
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "routing_accuracy.json"
DATA = ROOT / "bench" / "routing_data"
SEED = 4
DEV_SHARE = 0.4
TARGETS = {
    "top1_descriptions": ">= 90",
    "top1_examples": ">= 95",
    "oos_caught": ">= 60",
    "in_scope_lost": "<= 5",
    "rank_p50_ms": "<= 5",
    "load_s": "<= 2",
    "memory_mb": "<= 300",
}


def setup_django() -> None:
    """Django on a throwaway SQLite file: the semantic model stores its vectors as the product does."""
    folder = tempfile.mkdtemp(prefix="symphony-routing-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "symphony.settings"
    os.environ.setdefault("DJANGO_DEBUG", "1")  # a throwaway database: no secret key to keep
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def load_data(folder: Path = DATA) -> dict:
    agents, queries, off_topic, history = [], [], [], {}
    for path in sorted(folder.glob("*.json")):
        part = json.loads(path.read_text())
        agents += part["agents"]
        queries += [(q["text"], q["agent"], q["intent"]) for q in part["queries"]]
        off_topic += [(q["text"], None, q["intent"]) for q in part["off_topic"]]
        history.update(part["history"])
    names = {a["name"] for a in agents}
    unknown = {label for _, label, _ in queries} - names
    if unknown:
        raise SystemExit(f"queries labelled with unknown agents: {sorted(unknown)}")
    return {"agents": agents, "queries": queries, "off_topic": off_topic, "history": history}


def split(data: dict) -> dict[str, list[tuple[str, str | None]]]:
    """Dev and test lists of (query, right agent or None): each agent's intents (and the off-topic ones) 40/60."""
    rng = random.Random(SEED)
    intents: dict[str | None, dict[str, list[str]]] = {}
    for text, label, intent in data["queries"] + data["off_topic"]:
        intents.setdefault(label, {}).setdefault(intent, []).append(text)
    out: dict[str, list[tuple[str, str | None]]] = {"dev": [], "test": []}
    for label in sorted(intents, key=str):
        names = sorted(intents[label])
        rng.shuffle(names)
        cut = round(len(names) * DEV_SHARE)
        for position, intent in enumerate(names):
            out["dev" if position < cut else "test"] += [(text, label) for text in intents[label][intent]]
    return out


def tags(agent: dict) -> list[str]:
    found = []
    for capability in agent["capabilities"]:
        found.append(capability["name"])
        found += capability.get("expertise", [])
    return found


def profiles(data: dict, *, examples: bool, history: int = 0, corrections=None):
    from routing.relevance import AgentProfile
    from routing.strategies import capability_lines

    corrections = corrections or {}
    return [
        AgentProfile(
            key=a["name"],
            name=a["name"],
            role=a["role"],
            description=a["description"],
            expertise=tuple(tags(a)),
            examples=tuple(a["examples"]) if examples else (),
            history=tuple(data["history"].get(a["name"], ())[:history]),
            corrections=tuple(corrections.get(a["name"], ((), ()))[0]),
            negatives=tuple(corrections.get(a["name"], ((), ()))[1]),
            capabilities=capability_lines(a["capabilities"]),
        )
        for a in data["agents"]
    ]


class Substring:
    """The seed's content match: tags and role words found in the query, counted; the most wins."""

    def __init__(self, agents: list[dict]):
        self.agents = [(a["name"], [t.lower() for t in tags(a)] + a["role"].lower().split()) for a in agents]

    def decide(self, query: str) -> tuple[str, str | None]:
        lowered = query.lower()
        counts = [sum(1 for word in words if word in lowered) for _, words in self.agents]
        first = self.agents[counts.index(max(counts))][0]
        return first, first


class Model:
    """A relevance model's answers: (ranked first, chosen or None for "nothing fits")."""

    def __init__(self, model):
        self.model = model

    def decide(self, query: str) -> tuple[str, str | None]:
        top = self.model.rank(query)[0]
        return top.key, (top.key if top.score >= self.model.threshold(top.key) else None)


def evaluate(decider, data: list[tuple[str, str | None]]) -> dict:
    in_scope = [(q, label) for q, label in data if label is not None]
    off_topic = [q for q, label in data if label is None]
    answers = {q: decider.decide(q) for q, _ in data}
    refused = [q for q, _ in data if answers[q][1] is None]
    caught = [q for q in off_topic if answers[q][1] is None]
    lost = [q for q, _ in in_scope if answers[q][1] is None]
    confusion: dict[str, dict[str, int]] = {}
    for q, label in in_scope:
        got = answers[q][0]
        if got != label:
            confusion.setdefault(label, {}).setdefault(got, 0)
            confusion[label][got] += 1
    return {
        "in_scope": len(in_scope),
        "off_topic": len(off_topic),
        "top1": _share([answers[q][0] == label for q, label in in_scope]),
        "top1_with_refusals": _share([answers[q][1] == label for q, label in in_scope]),
        "oos_caught": len(caught) / len(off_topic) if off_topic else None,
        "in_scope_lost": len(lost) / len(in_scope) if in_scope else None,
        "nothing_fits_precision": len(caught) / len(refused) if refused else None,
        "confusion": confusion,
        "errors": [
            {"query": q, "expected": label, "ranked_first": answers[q][0], "chosen": answers[q][1]}
            for q, label in data
            if answers[q][1] != label
        ],
    }


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def calibrate(model, dev: list[tuple[str, str | None]], max_lost: float = 0.04) -> float:
    """The highest threshold that refuses at most ``max_lost`` of dev's in-scope queries (of those ranked right)."""
    scores = sorted(model.rank(q)[0].score for q, label in dev if label is not None)
    return scores[int(len(scores) * max_lost)] if scores else 0.0


def memoise_lexical(model) -> None:
    """Keep the lexical ranks of a semantic model's queries: tuning re-ranks the same queries many times."""
    rank, seen = model.lexical.rank, {}

    def cached(query):
        if query not in seen:
            seen[query] = rank(query)
        return seen[query]

    model.lexical.rank = cached


GRID = {
    "BEST_SHARE": (0.3, 0.4, 0.5, 0.6, 0.7),
    "LEXICAL_WEIGHT": (0.0, 0.05, 0.1, 0.2),
}


def tune(data: dict, dev: list) -> dict:
    """The grid's best semantic weights on dev: mean top-1 over profiles without and with examples."""
    from routing import semantic

    models = [semantic.SemanticRelevanceModel(profiles(data, examples=e)) for e in (False, True)]
    for model in models:
        memoise_lexical(model)
    in_scope = [(q, label) for q, label in dev if label is not None]
    results = []
    for values in itertools.product(*GRID.values()):
        for name, value in zip(GRID, values, strict=True):
            setattr(semantic, name, value)
        semantic._agent.cache_clear()
        score = statistics.mean(_share([m.rank(q)[0].key == label for q, label in in_scope]) for m in models)
        results.append((score, dict(zip(GRID, values, strict=True))))
        print(f"  {score * 100:5.1f}%  {results[-1][1]}")
    results.sort(key=lambda item: -item[0])
    best = results[0][1]
    for name, value in best.items():
        setattr(semantic, name, value)
    semantic._agent.cache_clear()
    return {"best": best, "dev_top1": results[0][0], "threshold_for_4pct_loss": calibrate(models[1], dev)}


def timing(data: dict, queries: list[str]) -> dict:
    """Ranking one query among 50 agents (the data's 24, twice, and two more), each query embedded cold."""
    from routing import semantic, vectors
    from routing.relevance import RelevanceModel

    base = profiles(data, examples=True, history=8)
    fifty = [dataclasses.replace(p, key=f"{p.key}-{i}", name=f"{p.name}-{i}") for i in range(3) for p in base][:50]
    semantic.SemanticRelevanceModel(fifty)  # every agent text embedded and stored once, as in a running site
    lexical = RelevanceModel(fifty)
    semantic_ms, decision_ms, lexical_ms = [], [], []
    for query in queries:
        vectors.memory.discard(vectors.digest(query))  # a new task: its query was never embedded
        start = time.perf_counter()
        model = semantic.SemanticRelevanceModel(fifty)  # as each decision builds it: agent vectors from memory
        built = time.perf_counter()
        model.rank(query)
        done = time.perf_counter()
        semantic_ms.append((done - built) * 1000)
        decision_ms.append((done - start) * 1000)
        start = time.perf_counter()
        lexical.rank(query)
        lexical_ms.append((time.perf_counter() - start) * 1000)
    return {
        "agents": len(fifty),
        "queries": len(queries),
        "semantic_rank_p50_ms": round(statistics.median(semantic_ms), 2),
        "semantic_rank_p95_ms": round(sorted(semantic_ms)[int(len(semantic_ms) * 0.95)], 2),
        "semantic_build_and_rank_p50_ms": round(statistics.median(decision_ms), 2),
        "lexical_rank_p50_ms": round(statistics.median(lexical_ms), 2),
    }


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def load_and_memory(data: dict) -> dict:
    """The encoder's load time and the process's memory with it and a 50-agent index (vs before loading)."""
    from routing import embeddings, semantic

    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    embeddings.encoder()
    load_s = time.perf_counter() - start
    model = semantic.SemanticRelevanceModel(profiles(data, examples=True, history=8))
    model.rank("warm up the arrays")
    gc.collect()
    return {"load_s": round(load_s, 3), "memory_mb": round(rss_mb() - before, 1), "rss_before_mb": round(before, 1)}


def with_corrections(data: dict, splits: dict) -> dict:
    """Test-split accuracy after every dev query the examples model misrouted is given as a correction."""
    from routing.semantic import SemanticRelevanceModel

    model = SemanticRelevanceModel(profiles(data, examples=True))
    corrections: dict[str, tuple[list, list]] = {}
    wrong = 0
    for query, label in splits["dev"]:
        if label is None:
            continue
        first = model.rank(query)[0].key
        if first != label:
            wrong += 1
            corrections.setdefault(label, ([], []))[0].append(query)
            corrections.setdefault(first, ([], []))[1].append(query)
    corrected = SemanticRelevanceModel(profiles(data, examples=True, corrections=corrections))
    return {"corrections": wrong, **_headline(evaluate(Model(corrected), splits["test"]))}


def _headline(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("errors", "confusion")}


def _pct(value) -> str:
    return "   n/a" if value is None else f"{value * 100:5.1f}%"


def rows_for(results: dict) -> list[dict]:
    sem, lex, sub = results["semantic"], results["lexical"], results["substring"]
    t, lm = results["timing"], results["load"]

    def pct(what, key, variant, target):
        note = f"lexical {100 * (lex[variant][key] or 0):.1f}%, substring {100 * (sub[variant][key] or 0):.1f}%"
        return report.row(what, 100 * (sem[variant][key] or 0), "%", target, note)

    return [
        pct("routing top-1, descriptions + capabilities only", "top1", "descriptions", TARGETS["top1_descriptions"]),
        pct("routing top-1, with 5 examples per agent", "top1", "examples", TARGETS["top1_examples"]),
        pct("routing 'nothing fits': off-topic caught", "oos_caught", "examples", TARGETS["oos_caught"]),
        pct("routing 'nothing fits': in-scope lost", "in_scope_lost", "examples", TARGETS["in_scope_lost"]),
        report.row("routing: rank one query among 50 agents, p50", t["semantic_rank_p50_ms"], "ms",
                   TARGETS["rank_p50_ms"], f"lexical {t['lexical_rank_p50_ms']} ms"),
        report.row("routing: embedding model load", lm["load_s"], "s", TARGETS["load_s"]),
        report.row("routing: memory with the model and 50 agents", lm["memory_mb"], "MB", TARGETS["memory_mb"]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--data", type=Path, default=DATA, help="a folder of labelled JSON parts")
    parser.add_argument("--errors", action="store_true", help="print every misrouted query of the examples model")
    parser.add_argument("--tune", action="store_true", help="grid-search the semantic weights on dev first")
    parser.add_argument("--quick", action="store_true", help="make bench QUICK=1: time 50 queries instead of 200")
    args = parser.parse_args()

    setup_django()
    from routing import relevance, semantic

    data = load_data(args.data)
    splits = split(data)
    chosen = splits[args.split]
    load = load_and_memory(data)
    tuned = tune(data, splits["dev"]) if args.tune else None
    results: dict = {"semantic": {}, "lexical": {}, "substring": {}, "load": load}
    for variant, kwargs in (("descriptions", {"examples": False}), ("examples", {"examples": True}),
                            ("history", {"examples": True, "history": 8})):  # fmt: skip
        agent_profiles = profiles(data, **kwargs)
        results["semantic"][variant] = evaluate(Model(semantic.SemanticRelevanceModel(agent_profiles)), chosen)
        results["lexical"][variant] = evaluate(Model(relevance.RelevanceModel(agent_profiles)), chosen)
        results["substring"][variant] = evaluate(Substring(data["agents"]), chosen)
    results["corrections"] = with_corrections(data, splits)
    calibrated = calibrate(semantic.SemanticRelevanceModel(profiles(data, examples=True)), splits["dev"])
    in_scope = [q for q, label in chosen if label is not None]
    results["timing"] = timing(data, random.Random(SEED).sample(in_scope, 50 if args.quick else 200))

    shown = results["semantic"]["examples"]
    print(f"split: {args.split}: {shown['in_scope']} in-scope, {shown['off_topic']} off-topic queries, "
          f"{len(data['agents'])} agents")  # fmt: skip
    print(f"threshold: semantic default {semantic.DEFAULT_MIN_SCORE}, calibrated on dev (4% lost) {calibrated:.3f}")
    if tuned:
        print(f"tuned on dev: {tuned}")
    print(f"{'':34} {'semantic':>9} {'lexical':>9} {'substring':>9}")
    for variant in ("descriptions", "examples", "history"):
        print(f"profiles: {variant}")
        for title, key in (("  top-1 (ranked first)", "top1"), ("  top-1 with 'nothing fits' on", "top1_with_refusals"),
                           ("  off-topic caught", "oos_caught"), ("  in-scope lost", "in_scope_lost"),
                           ("  nothing-fits precision", "nothing_fits_precision")):  # fmt: skip
            cells = [_pct(results[m][variant][key]) for m in ("semantic", "lexical", "substring")]
            print(f"{title:34} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9}")
    c = results["corrections"]
    print(f"after {c['corrections']} dev corrections: top-1 {_pct(c['top1'])}, "
          f"off-topic caught {_pct(c['oos_caught'])}")  # fmt: skip
    t = results["timing"]
    print(f"rank one query among {t['agents']} agents: p50 {t['semantic_rank_p50_ms']} ms (p95 "
          f"{t['semantic_rank_p95_ms']}), index built and ranked {t['semantic_build_and_rank_p50_ms']} ms; "
          f"lexical {t['lexical_rank_p50_ms']} ms")  # fmt: skip
    print(f"model load {load['load_s']} s; memory +{load['memory_mb']} MB over {load['rss_before_mb']} MB")
    if args.errors:
        for error in results["semantic"]["examples"]["errors"]:
            print(f"  expected {error['expected']!s:20} first {error['ranked_first']!s:20} {error['query'][:90]}")

    rows = rows_for(results)
    for row in rows:
        print(f"  {row['what']}: {row['value']} {row['unit']} (target {row['target']}: "
              f"{'met' if row['met'] else 'missed'})")  # fmt: skip
    for model in ("semantic", "lexical", "substring"):
        for variant in results[model].values():
            variant["errors"] = variant["errors"][:50]
    report.write(
        args.output,
        name="routing accuracy",
        config={"split": args.split, "agents": len(data["agents"]), "threshold": semantic.DEFAULT_MIN_SCORE},
        rows=rows,
        split=args.split,
        tuned=tuned,
        calibrated_threshold_on_dev=round(calibrated, 4),
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        python=platform.python_version(),
        **results,
    )
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
