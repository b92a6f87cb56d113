"""Define a workflow in Python; the builder writes the same dict as a JSON or YAML file.

    wf = Workflow("digest", description="Count a text's words, then publish.")
    stats = wf.step("stats", agent="text-stats", input={"text": "{{ input.text }}"})
    wf.step("publish", approval={"message": "Publish?"}, depends_on=[stats])
    spec = wf.spec(agent_exists=...)  # the checked WorkflowSpec, or SpecError

The builder checks nothing itself: ``spec()`` hands ``to_dict()`` to ``parse_spec``,
so a definition is refused the same way whichever way it was written.
"""

from collections.abc import Callable, Iterable
from typing import Any

from workflows.spec import WorkflowSpec, parse_spec


class Step:
    """A step added to a ``Workflow``: pass it in another step's ``depends_on``."""

    def __init__(self, step_id: str, fields: dict[str, Any]):
        self.id = step_id
        self.fields = fields

    def output(self, path: str = "") -> str:
        """A placeholder for this step's output, or a part of it: ``stats.output("words")``."""
        name = f'"{self.id}"' if "-" in self.id else self.id  # JMESPath reads a bare "-" as a minus
        return "{{ steps." + name + ".output" + (f".{path}" if path else "") + " }}"

    def __repr__(self) -> str:
        return f"<Step {self.id!r}>"


class Workflow:
    def __init__(self, name: str, *, description: str = ""):
        self.name = name
        self.description = description
        self.steps: list[Step] = []

    def step(
        self,
        step_id: str,
        *,
        agent: str | None = None,
        route: dict | None = None,
        approval: dict | None = None,
        input: Any = None,
        depends_on: "Iterable[Step | str] | Step | str" = (),
        condition: str | None = None,
        map: str | None = None,
        max_concurrent: int | None = None,
        until: str | None = None,
        max_iterations: int | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        on_failure: str | None = None,
    ) -> Step:
        """Add a step; the fields mean what they mean in a definition file, and ``None`` leaves one out."""
        if isinstance(depends_on, Step | str):
            depends_on = [depends_on]
        fields = {
            "id": step_id,
            "agent": agent,
            "route": route,
            "approval": approval,
            "input": input,
            "depends_on": [dependency.id if isinstance(dependency, Step) else dependency for dependency in depends_on],
            "condition": condition,
            "map": map,
            "max_concurrent": max_concurrent,
            "until": until,
            "max_iterations": max_iterations,
            "retries": retries,
            "timeout": timeout,
            "priority": priority,
            "on_failure": on_failure,
        }
        step = Step(step_id, {key: value for key, value in fields.items() if value is not None and value != []})
        self.steps.append(step)
        return step

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["steps"] = [dict(step.fields) for step in self.steps]
        return data

    def spec(self, *, agent_exists: Callable[[str], bool] | None = None, limits: dict | None = None) -> WorkflowSpec:
        return parse_spec(self.to_dict(), agent_exists=agent_exists, limits=limits)
