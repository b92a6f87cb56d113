"""The task as the router sees it: one definition of "the task's query", shared with the llm agent."""

import pytest

from routing.decisions import RouteRequest, query_text, task_query
from routing.kinds.errors import AgentInputError
from routing.kinds.prompts import chat_messages
from routing.models import AgentConfig, AgentKind

INPUTS = [
    "Translate this",
    "  padded  ",
    {"query": "from query"},
    {"prompt": "from prompt"},
    {"question": "from question"},
    {"text": "from text"},
    {"input": "from input"},
    {"question": "the first key wins", "text": "not this"},
    {"query": "   ", "prompt": "blank fields are skipped"},
    {"query": 42},
    {"query": True},
    {"ask": "not a query key"},
    {"messages": []},
    "",
    [],
    None,
]


class Task:
    def __init__(self, input_data):
        self.input_data = input_data


def llm_query(input_data) -> str | None:
    """The user message an llm agent would send for this input, or None when it refuses the input."""
    config = AgentConfig(name="writer", kind=AgentKind.LLM, instruction_template="")
    try:
        messages = chat_messages(config, input_data)
    except AgentInputError:
        return None
    return messages[-1]["content"]


@pytest.mark.parametrize("input_data", INPUTS, ids=repr)
def test_the_router_and_the_llm_agent_read_the_same_query(input_data):
    routed = RouteRequest.for_task(Task(input_data)).query

    assert routed == (llm_query(input_data) or "")


def test_a_question_is_a_query():
    assert task_query({"question": "Why is the sky blue?"}) == "Why is the sky blue?"
    assert query_text({"question": "Why is the sky blue?"}) == "Why is the sky blue?"


def test_an_input_without_a_query_has_none():
    assert task_query({"ask": "misnamed", "language": "fr"}) is None
    assert query_text({"ask": "misnamed"}) == ""
