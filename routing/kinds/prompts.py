"""From an agent config and a task's input to the chat messages an llm agent sends."""

import re
from collections.abc import Mapping
from typing import Any

from routing.decisions import QUERY_KEYS, task_query
from routing.kinds.errors import AgentInputError

CHAT_ROLES = frozenset({"system", "user", "assistant"})
_OTHER_QUERY_KEYS = " / ".join(f'"{key}"' for key in QUERY_KEYS[1:])
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_instructions(template: str, values: Mapping[str, Any]) -> str:
    """Fill the ``{name}``-style placeholders that have a value and leave every other brace as written.

    ``str.format_map`` would make authors double the braces of any JSON example in a
    prompt and would allow attribute lookups like ``{role.__class__}``; a plain
    substitution of known names does neither.
    """
    return PLACEHOLDER.sub(lambda match: str(values[match[1]]) if match[1] in values else match[0], template)


def template_values(config, input_data: Any) -> dict[str, Any]:
    """Placeholders a template may use: the input's top-level text and numbers, then the agent's own fields."""
    values: dict[str, Any] = {}
    if isinstance(input_data, dict):
        values.update(
            (key, value)
            for key, value in input_data.items()
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
        )
    # The template belongs to the agent, so its own name and role win over same-named input fields.
    values.update(name=config.name, role=config.role, description=config.description)
    return values


def conversation(input_data: Any) -> list[dict[str, str]]:
    """An optional full conversation from ``input_data["messages"]``, checked message by message."""
    if not isinstance(input_data, dict) or "messages" not in input_data:
        return []
    messages = input_data["messages"]
    if not isinstance(messages, list):
        raise AgentInputError('input "messages" must be a list of {"role": ..., "content": ...} objects.')
    checked = []
    for number, message in enumerate(messages, start=1):
        if (
            not isinstance(message, dict)
            or message.get("role") not in CHAT_ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise AgentInputError(
                f'input message {number} must be {{"role": "system"|"user"|"assistant", "content": "<text>"}}.'
            )
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


def chat_messages(config, input_data: Any) -> list[dict[str, str]]:
    """System prompt from the agent's instruction template, then any conversation, then the query."""
    history = conversation(input_data)
    query = task_query(input_data)
    if query is None and not any(message["role"] == "user" for message in history):
        raise AgentInputError(
            'An llm agent needs the task as text: a string, or {"query": "..."} '
            f"(or {_OTHER_QUERY_KEYS}), "
            f'or a "messages" conversation; got {_shape(input_data)}.'
        )
    messages = []
    system = render_instructions(config.instruction_template or "", template_values(config, input_data)).strip()
    if system and not (history and history[0]["role"] == "system"):
        messages.append({"role": "system", "content": system})
    messages.extend(history)
    if query is not None:
        messages.append({"role": "user", "content": query})
    return messages


def _shape(input_data: Any) -> str:
    if isinstance(input_data, dict):
        keys = ", ".join(repr(key) for key in list(input_data)[:8])
        return f"an object with keys {keys}" if keys else "an empty object"
    return "an empty string" if input_data == "" else type(input_data).__name__
