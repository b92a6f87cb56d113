"""The DAG picture: layers follow dependencies, rows keep edges short, and the SVG shows each step's state."""

import re

import pytest

from workflows import presenters
from workflows.dag import LAYER_GAP, MARGIN, NODE_HEIGHT, NODE_WIDTH, ROW_GAP, layout
from workflows.presenters import run_page, run_panels
from workflows.services import workflow_run_start


def places(picture) -> dict[str, tuple[int, int]]:
    return {node.id: (node.layer, node.row) for node in picture.nodes}


def edges(picture) -> set[tuple[str, str]]:
    return {(edge.source.id, edge.target.id) for edge in picture.edges}


def test_a_chain_goes_one_layer_per_step():
    picture = layout([("a", []), ("b", ["a"]), ("c", ["b"])])

    assert places(picture) == {"a": (0, 0), "b": (1, 0), "c": (2, 0)}
    assert edges(picture) == {("a", "b"), ("b", "c")}
    assert picture.width == 2 * MARGIN + 3 * NODE_WIDTH + 2 * LAYER_GAP
    assert picture.height == 2 * MARGIN + NODE_HEIGHT


def test_a_fan_out_stacks_the_branches_in_one_layer():
    picture = layout([("root", []), ("x", ["root"]), ("y", ["root"]), ("z", ["root"])])

    assert places(picture) == {"root": (0, 0), "x": (1, 0), "y": (1, 1), "z": (1, 2)}
    assert picture.height == 2 * MARGIN + 3 * NODE_HEIGHT + 2 * ROW_GAP
    nodes = {node.id: node for node in picture.nodes}
    assert nodes["y"].y - nodes["x"].y == NODE_HEIGHT + ROW_GAP  # no overlap


def test_a_fan_in_sits_after_its_deepest_dependency():
    picture = layout([("a", []), ("b", []), ("c", ["a"]), ("join", ["b", "c"])])

    assert places(picture)["join"] == (2, 0)
    assert edges(picture) == {("a", "c"), ("b", "join"), ("c", "join")}


def test_within_a_layer_steps_follow_what_they_depend_on():
    picture = layout([("top", []), ("bottom", []), ("after-bottom", ["bottom"]), ("after-top", ["top"])])

    assert places(picture)["after-top"] == (1, 0) and places(picture)["after-bottom"] == (1, 1)


def test_an_edge_runs_from_the_source_s_right_side_to_the_target_s_left_side():
    picture = layout([("a", []), ("b", ["a"])])

    path = picture.edges[0].path

    start = (MARGIN + NODE_WIDTH, MARGIN + NODE_HEIGHT / 2)
    end = (MARGIN + NODE_WIDTH + LAYER_GAP, MARGIN + NODE_HEIGHT / 2)
    assert path.startswith(f"M{start[0]:g},{start[1]:g} C") and path.endswith(f"{end[0]:g},{end[1]:g}")


def test_an_edge_that_skips_layers_runs_where_no_step_is_in_its_way():
    # The demo's shape: a fan-out, one branch longer, and a fan-in after it.
    picture = layout([("a", []), ("b", []), ("long", ["a"]), ("join", ["a", "b", "long"])])
    nodes = {node.id: node for node in picture.nodes}
    lanes = {(edge.source.id, edge.target.id): edge.lane for edge in picture.edges}

    # b's own height is free in the skipped layer; a's is where "long" stands, so it runs below it.
    assert lanes[("b", "join")] == nodes["b"].y + NODE_HEIGHT / 2
    assert lanes[("a", "join")] == nodes["long"].y + NODE_HEIGHT + ROW_GAP / 2
    assert lanes[("a", "long")] is None and lanes[("long", "join")] is None
    b_to_join = next(edge for edge in picture.edges if edge.source.id == "b")
    assert f" L{nodes['join'].x - LAYER_GAP:g},{lanes[('b', 'join')]:g} " in b_to_join.path
    assert picture.height >= lanes[("a", "join")] + MARGIN


@pytest.mark.django_db
def test_the_svg_has_one_node_per_step_coloured_by_its_state(define, work_off):
    define(
        [
            {"id": "split", "agent": "echo"},
            {"id": "items", "agent": "echo", "depends_on": ["split"], "map": "input.items", "input": "{{ item }}"},
            {"id": "skipped", "agent": "echo", "depends_on": ["split"], "condition": "input.never"},
            {"id": "bad", "agent": "boom", "depends_on": ["split"], "on_failure": "continue"},
            {"id": "ask", "depends_on": ["items", "skipped", "bad"], "approval": {"message": "OK?"}},
            {"id": "after", "agent": "echo", "depends_on": ["ask"]},
        ]
    )
    run = workflow_run_start(definition="wf", input={"items": [1, 2, 3]})
    work_off()

    svg = run_panels(run_page(run_id=run.pk), ["run-dag"])["run-dag"]

    nodes = dict(re.findall(rf'id="run-{run.pk}-node-([a-z-]+)" class="dag-node state-([a-z_]+)"', svg))
    assert nodes == {
        "split": "completed",
        "items": "completed",
        "skipped": "skipped",
        "bad": "failed",
        "ask": "waiting",
        "after": "not_started",
    }
    assert "COMPLETED · 3/3" in svg  # a map step's items
    assert svg.count('class="dag-edge"') == 7
    assert 'hx-swap-oob="true"' in svg


@pytest.mark.django_db
def test_a_loop_node_shows_its_iteration(define, work_off):
    define([{"id": "again", "agent": "echo", "input": {"n": "{{ iteration }}"}, "until": "output.echo.n > `1`",
             "max_iterations": 3}])  # fmt: skip
    run = workflow_run_start(definition="wf")
    work_off()

    svg = run_panels(run_page(run_id=run.pk), ["run-dag"])["run-dag"]

    assert "COMPLETED · iteration 2 of 3" in svg


def test_long_step_ids_are_shortened_in_the_node_and_kept_in_its_title():
    long_id = "a-step-id-far-too-long-for-a-node"
    assert len(long_id) > 21
    picture = layout([(long_id, [])])
    picture.nodes[0].detail = "not started"

    html = presenters.render_text(
        "workflows/run.html#run-dag", {"run": {"pk": 1}, "picture": picture, "total_steps": 1}
    )

    assert f"<title>{long_id}: not started</title>" in html
    assert ">a-step-id-far-too-lo…</text>" in html
