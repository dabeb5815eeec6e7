"""The builder's graph layout (pure, no Qt): rows, columns, link routes and pixel placement."""

from __future__ import annotations

import itertools
import random

import pytest

from visualcnn.gui.graph_layout import INPUT, Rect, input_ports, layout_graph, output_port, place, segments_cross

LINEAR = [(-1,), (0,), (1,), (2,), (3,)]
# stem, conv, conv, Add(conv2, stem): a residual block around two convolutions
RESIDUAL = [(-1,), (0,), (1,), (2, 0)]
# stem, 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | pool -> 1x1, Concatenate(four branches)
INCEPTION = [(-1,), (0,), (0,), (2,), (0,), (4,), (0,), (6,), (1, 3, 5, 7)]
# ResNet with a projection shortcut: stem, conv, conv, proj(stem), Add(conv, proj)
PROJECTION = [(-1,), (0,), (1,), (0,), (2, 3)]


def random_dag(rng: random.Random, count: int) -> list[tuple[int, ...]]:
    inbound = []
    for i in range(count):
        sources = {rng.randrange(-1, i)} | ({rng.randrange(-1, i)} if i and rng.random() < 0.3 else set())
        inbound.append(tuple(sorted(sources)))
    return inbound


def placed(inbound, heights=None, width=300.0):
    layout = layout_graph(inbound)
    heights = heights or [60.0 + 10 * (i % 3) for i in range(len(inbound))]
    return layout, place(layout, heights, width, gap=20.0 if not layout.linear else 0.0, spacing=16.0)


def test_a_linear_pipeline_is_one_column_in_document_order():
    layout, placement = placed(LINEAR, heights=[50.0] * 5, width=400.0)
    assert layout.linear
    assert layout.rows == (0, 1, 2, 3, 4) and layout.columns == (0, 0, 0, 0, 0)
    assert layout.column_count == 1 and sum(layout.tracks) == 0
    # a plain stack: no gaps, each card right under the one before, as wide as asked
    assert [(c.x, c.y, c.width, c.height) for c in placement.cards] == [(0, 50.0 * i, 400.0, 50.0) for i in range(5)]
    assert all(link.kind == "adjacent" for link in layout.links)


def test_a_residual_block_keeps_its_chain_in_one_column_and_the_skip_in_a_lane():
    layout, placement = placed(RESIDUAL)
    assert not layout.linear
    assert layout.rows == (0, 1, 2, 3) and layout.columns == (0, 0, 0, 0)
    skip = next(link for link in layout.links if (link.source, link.target) == (0, 3))
    assert skip.kind == "lane" and skip.slot == 1
    assert skip.gutter == 1  # right of the column, on the side of the Add's second input: no crossing
    assert [(link.source, link.target, link.slot) for link in layout.links] == \
        [(INPUT, 0, 0), (0, 1, 0), (1, 2, 0), (2, 3, 0), (0, 3, 1)]
    lane_x = placement.paths[layout.links.index(skip)][2][0]
    assert lane_x > placement.cards[0].right  # the skip runs beside the cards, not through them


def test_a_skip_into_the_first_input_runs_on_the_left():
    layout = layout_graph([(-1,), (0,), (1,), (0, 2)])
    skip = next(link for link in layout.links if (link.source, link.target) == (0, 3))
    assert skip.kind == "lane" and skip.gutter == 0


def test_parallel_branches_sit_side_by_side_and_the_merge_under_the_first():
    layout, placement = placed(INCEPTION)
    assert layout.rows == (0, 1, 1, 2, 1, 2, 1, 2, 3)
    assert layout.columns == (0, 0, 1, 1, 2, 2, 3, 3, 0)
    assert layout.column_count == 4
    # the 1x1 branch's link to the Concatenate runs down its own empty column
    direct = next(link for link in layout.links if (link.source, link.target) == (1, 8))
    assert direct.kind == "column" and direct.column == 0
    # each branch reaches its own input port, in input order, left to right
    ports = [placement.paths[n][-1][0] for n, link in enumerate(layout.links) if link.target == 8]
    assert ports == sorted(ports) and len(set(ports)) == 4


def test_a_projection_shortcut_gets_a_column_of_its_own():
    layout, _ = placed(PROJECTION)
    assert layout.columns == (0, 0, 0, 1, 0)
    assert layout.rows == (0, 1, 2, 1, 3)
    proj = next(link for link in layout.links if (link.source, link.target) == (3, 4))
    assert proj.kind == "column" and proj.column == 1


@pytest.mark.parametrize("inbound", [LINEAR, RESIDUAL, INCEPTION, PROJECTION])
def test_the_same_graph_always_gives_the_same_layout(inbound):
    assert layout_graph(inbound) == layout_graph([tuple(s) for s in inbound])
    assert placed(inbound)[1] == placed(inbound)[1]


def test_an_edit_moves_only_the_blocks_after_it():
    before = layout_graph(INCEPTION)
    # one more block at the end of the 5x5 branch: rows below it move down, nothing moves sideways
    after = layout_graph([(-1,), (0,), (0,), (2,), (0,), (4,), (5,), (0,), (7,), (1, 3, 6, 8)])
    kept = [0, 1, 2, 3, 4, 5, 7, 8]          # the old blocks, by their new index
    old = [0, 1, 2, 3, 4, 5, 6, 7]
    assert [after.columns[k] for k in kept] == [before.columns[o] for o in old]
    assert [after.rows[k] for k in kept] == [before.rows[o] for o in old]
    assert after.columns[9] == before.columns[8]


def test_ports_spread_over_the_top_edge_in_input_order():
    card = Rect(10, 100, 300, 60)
    assert input_ports(card, 1) == ((160.0, 100),)
    assert input_ports(card, 2) == ((110.0, 100), (210.0, 100))
    assert output_port(card) == (160.0, 160)


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_never_overlap_cards_and_arrows_never_cross_a_card(seed):
    rng = random.Random(seed)
    inbound = random_dag(rng, rng.randrange(2, 16))
    layout, placement = placed(inbound)
    cards = placement.cards
    for a, b in itertools.combinations(range(len(cards)), 2):
        assert not cards[a].intersects(cards[b]), (inbound, a, b)
    cells = list(zip(layout.rows, layout.columns))
    assert len(cells) == len(set(cells)), inbound
    for link, points in zip(layout.links, placement.paths):
        assert all(x0 == x1 or y0 == y1 for (x0, y0), (x1, y1) in zip(points, points[1:])), points
        assert points[-1] == input_ports(cards[link.target], len(layout.inputs[link.target]))[link.slot]
        for other, card in enumerate(cards):
            if other not in (link.source, link.target):
                assert not segments_cross(points, card), (inbound, link, other)


def test_inputs_are_drawn_once_in_order_and_bad_links_are_left_out():
    layout = layout_graph([(-1,), (0, 0), (5, 1)])  # a duplicate source; a source that comes later
    assert layout.inputs == ((INPUT,), (0,), (1,))
    assert not layout.linear


def test_straight_links_are_those_of_a_plain_run():
    layout = layout_graph(PROJECTION)
    straight = {(link.source, link.target) for link in layout.links if layout.straight(link)}
    assert straight == {(INPUT, 0), (1, 2)}  # stem feeds two blocks; the Add has two inputs


def test_a_card_alone_in_its_row_spans_the_empty_columns():
    layout, placement = placed(INCEPTION)
    assert layout.spans == (4, 1, 1, 1, 1, 1, 1, 1, 4)  # the stem and the Concatenate run across
    assert placement.cards[0].width == placement.cards[8].width > 4 * placement.cards[1].width
    # a link running down an empty column keeps its cells: the 1x1 branch's card does not widen
    layout = layout_graph(PROJECTION)
    assert layout.spans[layout.rows.index(2)] == 1


def test_a_skip_lane_moves_past_empty_columns_so_the_blocks_beside_it_stay_wide():
    # an identity block (skip in a lane), then a block whose shortcut needs its own column
    inbound = [(-1,), (0,), (1,), (2, 0), (3,), (4,), (3,), (5, 6)]
    layout = layout_graph(inbound)
    assert layout.column_count == 2
    skip = next(link for link in layout.links if (link.source, link.target) == (0, 3))
    assert skip.kind == "lane" and skip.gutter == 2  # right of both columns, not between them
    assert layout.spans[1] == layout.spans[2] == 2
