"""The picture of a workflow: its steps laid out in layers, drawn as SVG on the server.

Layers follow the dependencies (a step sits one layer right of its deepest
dependency); within a layer, steps are ordered by the mean position of what
they depend on, which keeps most edges short and uncrossed. An edge that skips
layers runs straight through them, at its source's height where those layers
leave it free, else below their lowest step, so it never passes behind a step
it does not connect. No JavaScript and no library: the page and every live
push render the same template partial.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

NODE_WIDTH, NODE_HEIGHT = 168, 46
LAYER_GAP, ROW_GAP, MARGIN = 64, 18, 12
# Beyond this many steps a picture stops helping: the page lists the steps instead.
MAX_DRAWN_STEPS = 400


@dataclass
class Node:
    id: str
    layer: int
    row: int = 0
    state: str = ""
    detail: str = ""
    href: str = ""
    x: float = 0
    y: float = 0

    @property
    def css_state(self) -> str:
        return (self.state or "NOT_STARTED").lower()


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = (x2 - x1) / 2
    return f"C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}"


@dataclass
class Edge:
    source: Node
    target: Node
    lane: float | None = None  # the height an edge that skips layers runs at through them

    @property
    def path(self) -> str:
        """From the source's right edge to the target's left edge: one curve, or curve, lane, curve."""
        x1, y1 = self.source.x + NODE_WIDTH, self.source.y + NODE_HEIGHT / 2
        x2, y2 = self.target.x, self.target.y + NODE_HEIGHT / 2
        if self.lane is None:
            return f"M{x1:g},{y1:g} {_curve(x1, y1, x2, y2)}"
        into, out_of = x1 + LAYER_GAP, x2 - LAYER_GAP  # the first and last gap between layers
        lane = self.lane
        return f"M{x1:g},{y1:g} {_curve(x1, y1, into, lane)} L{out_of:g},{lane:g} {_curve(out_of, lane, x2, y2)}"


@dataclass
class Picture:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: float = 0
    height: float = 0
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


def layout(steps: Iterable[tuple[str, Iterable[str]]]) -> Picture:
    """Positions for ``(step id, its dependencies)`` given in a topological order."""
    nodes: dict[str, Node] = {}
    parents: dict[str, list[str]] = {}
    for step_id, depends_on in steps:
        deps = [dep for dep in depends_on if dep in nodes]
        parents[step_id] = deps
        nodes[step_id] = Node(step_id, layer=1 + max((nodes[dep].layer for dep in deps), default=-1))
    layers: dict[int, list[Node]] = {}
    for node in nodes.values():
        layers.setdefault(node.layer, []).append(node)
    for number in sorted(layers):
        members = layers[number]
        if number > 0:
            members.sort(key=lambda node: _mean(nodes[dep].row for dep in parents[node.id]))
        for row, node in enumerate(members):
            node.row = row
            node.x = MARGIN + number * (NODE_WIDTH + LAYER_GAP)
            node.y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
    edges = [Edge(nodes[dep], nodes[step_id]) for step_id, deps in parents.items() for dep in deps]
    for edge in edges:
        skipped = [node for number in range(edge.source.layer + 1, edge.target.layer) for node in layers[number]]
        if skipped:
            edge.lane = _lane(edge.source.y + NODE_HEIGHT / 2, skipped)
    tallest = max((len(members) for members in layers.values()), default=0)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    return Picture(
        nodes=list(nodes.values()),
        edges=edges,
        width=2 * MARGIN + len(layers) * NODE_WIDTH + max(len(layers) - 1, 0) * LAYER_GAP,
        height=max([height, *(edge.lane + ROW_GAP / 2 + MARGIN for edge in edges if edge.lane is not None)]),
    )


def _lane(height: float, skipped: list[Node]) -> float:
    """``height`` if no step in the skipped layers is in the way there, else just below the lowest of them."""
    if all(not node.y - ROW_GAP / 2 < height < node.y + NODE_HEIGHT + ROW_GAP / 2 for node in skipped):
        return height
    return max(node.y + NODE_HEIGHT for node in skipped) + ROW_GAP / 2


def _mean(values: Iterable[int]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
