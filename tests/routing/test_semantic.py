"""Semantic routing: the packaged encoder, stored vectors, meaning over words, "nothing fits", corrections."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routing import embeddings, semantic, vectors
from routing.corrections import routing_correct
from routing.decisions import RouteRequest, RoutingStrategy
from routing.models import AgentConfig, TextVector
from routing.router import TaskRouter
from routing.text import analyse

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
KOREAN = "Give me the Korean version of this welcome message"


def agent(name, role, description, capabilities=(), examples=()) -> AgentConfig:
    return AgentConfig.objects.create(
        name=name,
        role=role,
        description=description,
        capabilities=[{"name": c, "expertise": []} for c in capabilities],
        example_tasks=list(examples),
        settings={"path": "tests.agents.echo"},
    )


@pytest.fixture
def team(db):
    return {
        "translator": agent(
            "translator",
            "Translator",
            "Translates text between languages, keeping tone, idioms and formatting.",
            ["translation", "localisation"],
        ),
        "summariser": agent(
            "summariser",
            "Summariser",
            "Condenses long documents, articles and meeting transcripts into short summaries.",
            ["summarisation", "key points"],
        ),
        "sql": agent(
            "sql-analyst",
            "SQL data analyst",
            "Writes and explains database queries and answers questions with numbers from tables.",
            ["sql", "query optimisation"],
        ),
        "reviewer": agent(
            "code-reviewer",
            "Code reviewer",
            "Reads pull requests and source code and points out bugs, unclear naming and missing tests.",
            ["code review", "refactoring"],
        ),
    }


def decide(query: str):
    return TaskRouter().decide(RouteRequest(query=query), strategy=RoutingStrategy.CONTENT_MATCH, dry_run=True)


def profile_words(config: AgentConfig) -> set[str]:
    text = " ".join([config.name, config.role, config.description, json.dumps(config.capabilities)])
    return {term for term, _ in analyse(text)}


def test_the_numpy_encoder_gives_the_reference_model_vectors():
    """The vectors transformers + PyTorch gave for the same model files (tests/routing/data, how it was made)."""
    reference = json.loads(REFERENCE.read_text())
    texts = list(reference["vectors"])
    ours = embeddings.encoder().encode(texts)
    theirs = np.array([reference["vectors"][text] for text in texts], dtype=np.float32)
    assert ours.shape == (2, 384)
    assert np.abs(ours - theirs).max() < 1e-4
    assert (ours * theirs).sum(axis=1).min() > 0.9999


NO_NETWORK = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network blocked by the test")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import os
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)
from routing.embeddings import encoder
vector = encoder().encode(["Give me the Korean version of this welcome message"])[0]
print(vector.shape[0], round(float((vector * vector).sum()), 4))
"""


def test_the_model_loads_and_embeds_with_the_network_blocked():
    """A fresh process whose sockets all refuse: the model comes from the installed package's files alone."""
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["384", "1.0"]


def test_a_paraphrase_with_no_shared_word_reaches_the_translator(team):
    assert not {term for term, _ in analyse(KOREAN)} & profile_words(team["translator"])

    decision = decide(KOREAN)

    assert decision.chosen == team["translator"]
    note = next(c.note for c in decision.candidates if c.agent == team["translator"])
    assert "similarity" in note and "no shared words" in note
    assert "translator is the most relevant" in decision.reason and "next: " in decision.reason


def test_nothing_fits_refuses_an_off_topic_task_and_routes_an_on_topic_one(team):
    refused = decide("What temperature should I bake a chocolate cake at?")
    routed = decide("Why is this join on the orders table so slow?")

    assert refused.chosen is None
    assert refused.reason.startswith("nothing here fits")
    assert "nearest: " in refused.reason and "each under its threshold" in refused.reason
    assert routed.chosen == team["sql"]


def test_agent_vectors_are_computed_once_and_read_back_by_a_new_process(team, monkeypatch):
    encoded: list[str] = []
    encoder = embeddings.encoder()
    real_encode = type(encoder).encode
    monkeypatch.setattr(type(encoder), "encode", lambda self, texts: encoded.extend(texts) or real_encode(self, texts))
    vectors.memory.clear()
    semantic._agent.cache_clear()

    decide("Summarise this transcript for me")
    first = list(encoded)
    stored = TextVector.objects.filter(model=embeddings.MODEL_NAME).count()
    encoded.clear()
    decide("Turn these meeting notes into three bullet points")
    second = list(encoded)
    vectors.memory.clear()  # as a new process starts: nothing in memory, everything in the table
    semantic._agent.cache_clear()
    encoded.clear()
    decide("Condense this report")

    assert len(first) > 8 and stored == len(first) - 1  # every agent text stored; the query is not
    assert second == ["Turn these meeting notes into three bullet points"]
    assert encoded == ["Condense this report"]


def test_a_correction_changes_the_next_decision(team, alice):
    query = "Give me the gist of this Korean welcome message"
    before = decide(query)
    wrong = before.chosen
    right = team["summariser"] if wrong != team["summariser"] else team["translator"]

    routing_correct(query=query, correct=right, chosen=wrong, by=alice)
    after = decide(query)

    assert after.chosen == right
    note = next(c.note for c in after.candidates if c.agent == right)
    assert "closest to its correction" in note


def test_a_correction_that_teaches_nothing_is_refused(team):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="already went to translator"):
        routing_correct(query="hola", correct=team["translator"], chosen=team["translator"])
    with pytest.raises(ValidationError, match="needs the task's query"):
        routing_correct(query="   ", correct=team["translator"])


def test_the_lexical_model_is_the_fallback_when_the_model_is_not_installed(team, monkeypatch, tmp_path):
    monkeypatch.setenv("SYMPHONY_EMBEDDING_MODEL_DIR", str(tmp_path))  # an empty folder: no model files

    decision = decide("Please translate this into French")

    assert decision.chosen == team["translator"]
    assert "(words only: the semantic model is not installed)" in decision.reason


def test_the_setting_chooses_the_lexical_model(team, settings):
    settings.SYMPHONY_RELEVANCE = "lexical"

    decision = decide("Please translate this into French")

    assert decision.chosen == team["translator"]
    assert all("similarity" not in c.note for c in decision.candidates)


def test_agents_with_enough_history_get_their_own_thresholds(db):
    """A narrow agent (its tasks all alike) refuses more than the global threshold, a broad one less; an agent
    with too little history keeps the global one."""
    from routing.relevance import AgentProfile

    narrow = AgentProfile(key="narrow", name="translator", role="Translator", history=tuple(
        f"Translate the {page} page into Spanish" for page in "home about pricing blog help faq careers team".split()
    ))  # fmt: skip
    broad = AgentProfile(key="broad", name="assistant", role="Office assistant", history=(
        "Book a meeting room for Tuesday", "Order more printer paper", "Draft a thank-you note to a client",
        "Find the cheapest flight to Oslo", "Sum up yesterday's sales call", "Renew the parking permit",
        "Check the Wi-Fi password for guests", "Plan the team lunch",
    ))  # fmt: skip
    newcomer = AgentProfile(key="new", name="sql-analyst", role="SQL analyst", examples=("Why is this join slow?",))
    model = semantic.SemanticRelevanceModel([narrow, broad, newcomer], min_score=0.2)

    assert model.threshold("narrow") > 0.2 > model.threshold("broad")
    assert model.threshold("new") == 0.2


def test_a_task_with_no_words_to_compare_is_refused_not_guessed(team, alice):
    from executions.services import SubmitError, execution_submit

    for query in ("", "a", "please help"):
        decision = decide(query)
        assert decision.chosen is None, query
        assert "no words to compare" in decision.candidates[0].note
    with pytest.raises(SubmitError, match="No suitable agent"):
        execution_submit(input_data={}, submitted_by=alice)  # named "task" by default: a placeholder, not a query


def test_a_submit_is_routed_as_its_dry_run_is(team, alice):
    from executions.services import execution_submit

    query = "Boil down these meeting notes"
    dry = decide(query)
    execution = execution_submit(input_data={"query": query}, submitted_by=alice, strategy="content_match")

    assert execution.agent == dry.chosen
    assert execution.routing["candidates"][0]["score"] == round(dry.candidates[0].score, 4)
