"""Where each block of a graph sits in the builder: rows, columns, and the route of every link.

Pure (no Qt): the same graph always gives the same layout, and it is tested by itself.

- Rows: the longest path from the input (a block sits one row below its deepest input).
- Columns: blocks are placed one by one in document order, each in the leftmost of its
  inputs' columns that is free from that input down to the block (so a chain stays in one
  column, a second branch opens the next column, and a merge closes under a branch);
  otherwise in the first free column to the right. An edit therefore only moves the blocks
  after it in the document, and a linear pipeline is one column in document order.
- Links: a link to the next row is drawn straight (or with one bend in the gap between
  the rows); a link that skips rows runs down a column whose cells are empty on the way,
  or else in a lane of the gutter beside the cards (gutter g is left of column g), so an
  arrow never crosses a card. A lane on the right of a column moves right past columns
  that are empty along it.
- Widths: a card alone in its row spans the empty columns to its right (no card, arrow or
  lane there), so the straight runs of a graph keep wide cards beside a short branch.

`layout_graph(inbound)` gives the abstract grid; `place(...)` turns it into rectangles
and polylines in pixels for given card sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

INPUT = -1  # the model input, as in the engine's inbound lists


@dataclass(frozen=True)
class Link:
    """One arrow: `source` (-1 = the input) feeds input `slot` of `target`."""

    source: int
    target: int
    slot: int
    column: int | None = None   # a link skipping rows that runs down this (empty) card column
    gutter: int | None = None   # ... or down lane `track` of this gutter

    track: int = 0

    @property
    def kind(self) -> str:
        if self.gutter is not None:
            return "lane"
        return "column" if self.column is not None else "adjacent"


@dataclass(frozen=True)
class GraphLayout:
    rows: tuple[int, ...]           # per block
    columns: tuple[int, ...]        # per block
    links: tuple[Link, ...]
    inputs: tuple[tuple[int, ...], ...]  # per block, the sources drawn (valid, in slot order)
    linear: bool                    # every block fed by the one before: today's plain column
    row_count: int
    column_count: int
    tracks: tuple[int, ...]         # lanes per gutter (column_count + 1 gutters)
    spans: tuple[int, ...] = ()     # per block, how many columns its card covers (empty ones to its right)

    def consumers(self, source: int) -> tuple[int, ...]:
        return tuple(dict.fromkeys(link.target for link in self.links if link.source == source))

    def straight(self, link: Link) -> bool:
        """A link inside a plain run: the source's only consumer, the target's only input,
        one row apart in one column (dropping a block there inserts it, as in a list)."""
        return (link.kind == "adjacent" and len(self.inputs[link.target]) == 1
                and self.consumers(link.source) == (link.target,)
                and (link.source == INPUT or self.columns[link.source] == self.columns[link.target]))


def _sources(inbound: Sequence[Sequence[int]], index: int) -> tuple[int, ...]:
    """The inputs of block `index` that can be drawn (earlier blocks or the input), in order."""
    return tuple(dict.fromkeys(int(j) for j in inbound[index] if -1 <= int(j) < index))


def layout_graph(inbound: Sequence[Sequence[int]]) -> GraphLayout:
    """The grid layout of a graph given each block's inbound indices (-1 = the input)."""
    count = len(inbound)
    inputs = tuple(_sources(inbound, i) for i in range(count))
    linear = all(tuple(int(j) for j in inbound[i]) == (i - 1,) for i in range(count))
    rows: list[int] = []
    for i in range(count):
        rows.append(1 + max((rows[j] for j in inputs[i] if j >= 0), default=-1))

    def row_of(j: int) -> int:
        return -1 if j == INPUT else rows[j]

    columns: list[int] = []

    def column_of(j: int) -> int:
        return 0 if j == INPUT else columns[j]

    # (row, column) -> ("card", index) or ("link", source): what already uses a grid cell
    taken: dict[tuple[int, int], tuple[str, int]] = {}

    def free(row: int, column: int, source: int | None = None) -> bool:
        owner = taken.get((row, column))
        return owner is None or (source is not None and owner == ("link", source))

    def run_free(column: int, first: int, last: int, source: int) -> bool:
        """Cells first..last of a column are empty, or carry a link from the same source."""
        return all(free(r, column, source) for r in range(first, last + 1))

    links: list[Link] = []
    pending: list[tuple[int, int, int, int, bool]] = []  # lane links: (link, top row, bottom row, gutter, movable)

    for i in range(count):
        row = rows[i]
        chosen = None
        for column in sorted({column_of(j) for j in inputs[i]}):
            # the deepest input in that column is the one the block would sit under
            source = max((j for j in inputs[i] if column_of(j) == column), key=row_of)
            if free(row, column) and run_free(column, row_of(source) + 1, row - 1, source):
                chosen = column
                break
        if chosen is None:
            chosen = min((column_of(j) for j in inputs[i]), default=0)
            while not free(row, chosen):
                chosen += 1
        columns.append(chosen)
        taken[(row, chosen)] = ("card", i)

        for slot, source in enumerate(inputs[i]):
            top, source_column = row_of(source), column_of(source)
            if row == top + 1:
                links.append(Link(source, i, slot))
                continue
            route = next((c for c in dict.fromkeys((source_column, chosen))
                          if run_free(c, top + 1, row - 1, source)), None)
            if route is not None:
                for r in range(top + 1, row):
                    taken[(r, route)] = ("link", source)
                links.append(Link(source, i, slot, column=route))
                continue
            if source_column != chosen:
                gutter = min(source_column, chosen) + 1  # between the two columns
            else:  # beside the column, on the side of the input port it reaches (no crossing there)
                gutter = chosen if 2 * slot < len(inputs[i]) - 1 else chosen + 1
            pending.append((len(links), top, row, gutter, source_column == chosen and gutter == chosen + 1))
            links.append(Link(source, i, slot, gutter=gutter))

    # Lanes, once every card is placed: a lane on the right of its column moves right past the
    # columns that are empty along it (so the cards beside it keep their width), then each takes
    # the first track of its gutter that no other lane uses over the same rows.
    lanes: dict[int, list[list[tuple[int, int, int]]]] = {}  # gutter -> tracks -> (top row, bottom row, source)
    right = max(columns, default=0) + 1
    for n, top, bottom, gutter, movable in pending:
        while movable and gutter < right and all(free(r, gutter) for r in range(top + 1, bottom)):
            gutter += 1
        source = links[n].source
        tracks = lanes.setdefault(gutter, [])
        track = next((t for t, used in enumerate(tracks)
                      if all(src == source or not (top < b and a < bottom) for a, b, src in used)), len(tracks))
        if track == len(tracks):
            tracks.append([])
        tracks[track].append((top, bottom, source))
        links[n] = Link(source, links[n].target, links[n].slot, gutter=gutter, track=track)

    column_count = max(columns, default=0) + 1
    tracks = tuple(len(lanes.get(g, ())) for g in range(column_count + 1))  # a lane's gutter <= column_count

    def lane_beside(gutter: int, row: int) -> bool:  # a lane runs down this gutter past the row
        return any(top < row < bottom for used in lanes.get(gutter, ()) for top, bottom, _ in used)

    # A card alone in its row takes the empty columns to its right (no card, arrow or lane
    # there), so a straight run beside a short branch keeps wide, readable cards.
    spans = []
    for i in range(count):
        span = 1
        while columns[i] + span < column_count and (rows[i], columns[i] + span) not in taken \
                and not lane_beside(columns[i] + span, rows[i]):
            span += 1
        spans.append(span)
    return GraphLayout(tuple(rows), tuple(columns), tuple(links), inputs, linear,
                       max(rows, default=-1) + 1, column_count, tracks, tuple(spans))


# --- pixels ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x <= self.right and self.y <= y <= self.bottom

    def intersects(self, other: "Rect") -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom


@dataclass(frozen=True)
class Placement:
    cards: tuple[Rect, ...]                             # per block
    paths: tuple[tuple[tuple[float, float], ...], ...]  # per link (same order as layout.links): a polyline
    input_port: tuple[float, float]                     # where links from the input start
    width: float
    height: float

    def input_ports(self, index: int, count: int) -> tuple[tuple[float, float], ...]:
        return input_ports(self.cards[index], count)


def input_ports(card: Rect, count: int) -> tuple[tuple[float, float], ...]:
    """Points on the card's top edge where its inputs arrive, left to right in slot order."""
    count = max(1, count)
    return tuple((card.x + card.width * (s + 1) / (count + 1), card.y) for s in range(count))


def output_port(card: Rect) -> tuple[float, float]:
    return (card.x + card.width / 2, card.bottom)


def _grid(layout: GraphLayout, card_width: float, spacing: float, lane_width: float, left: float):
    """x of each gutter and each column, and the total width."""
    gutter_widths = [max(spacing if 0 < g < layout.column_count else 0.0, tracks * lane_width)
                     for g, tracks in enumerate(layout.tracks)]
    gutter_x, column_x, x = [], [], left
    for g, width in enumerate(gutter_widths):
        gutter_x.append(x)
        x += width
        if g < layout.column_count:
            column_x.append(x)
            x += card_width
    return gutter_x, column_x, x


def gutters_width(layout: GraphLayout, *, spacing: float = 0.0, lane_width: float = 14.0) -> float:
    """The room the gutters take (between and beside the columns): the width left for cards."""
    return _grid(layout, 0.0, spacing, lane_width, 0.0)[2]


def card_widths(layout: GraphLayout, card_width: float, *, spacing: float = 0.0,
                lane_width: float = 14.0) -> tuple[float, ...]:
    """Each card's width: its column's, or across the empty columns it spans."""
    _, column_x, _ = _grid(layout, card_width, spacing, lane_width, 0.0)
    spans = layout.spans or (1,) * len(layout.rows)
    return tuple(column_x[c + s - 1] + card_width - column_x[c] for c, s in zip(layout.columns, spans))


def place(layout: GraphLayout, heights, card_width: float, *, gap: float = 0.0,
          spacing: float = 0.0, lane_width: float = 14.0, level_step: float = 7.0,
          left: float = 0.0, top: float = 0.0) -> Placement:
    """Pixel rectangles for the cards and polylines for the links.

    heights: each card's height, or a function (block, width) -> height; card_width: every
    column's width; gap: the minimum vertical room between rows (where links bend);
    spacing: the minimum room between columns; lane_width: room per lane in a gutter;
    level_step: vertical distance between two links bending in the same gap. A linear
    layout with gap 0 is a plain stack.
    """
    gutter_x, column_x, total_width = _grid(layout, card_width, spacing, lane_width, left)
    widths = card_widths(layout, card_width, spacing=spacing, lane_width=lane_width)
    if callable(heights):
        heights = [heights(i, w) for i, w in enumerate(widths)]

    def centre(column: int) -> float:
        return column_x[column] + card_width / 2

    def lane_x(link: Link) -> float:
        return gutter_x[link.gutter] + (link.track + 0.5) * lane_width

    # x of every link's source port and target port, and where its vertical run goes
    ports_in = {i: input_ports(Rect(column_x[layout.columns[i]], 0, widths[i], 1), len(layout.inputs[i]))
                for i in range(len(layout.rows))}
    first = next((i for i, sources in enumerate(layout.inputs) if INPUT in sources), None)
    input_port_x = left if not column_x else (centre(0) if first is None else column_x[layout.columns[first]]
                                              + widths[first] / 2)  # above the first block it feeds

    def source_x(link: Link) -> float:
        if link.source == INPUT:
            return input_port_x
        return column_x[layout.columns[link.source]] + widths[link.source] / 2

    def target_x(link: Link) -> float:
        return ports_in[link.target][link.slot][0]

    def run_x(link: Link) -> float | None:
        if link.kind == "lane":
            return lane_x(link)
        return centre(link.column) if link.kind == "column" else None

    # Horizontal pieces per gap (gap r is above row r): (x0, x1, link, which piece).
    pieces: dict[int, list[tuple[float, float, int, str]]] = {}
    for n, link in enumerate(layout.links):
        target_row = layout.rows[link.target]
        source_row = -1 if link.source == INPUT else layout.rows[link.source]
        run = run_x(link)
        if run is None:
            if abs(source_x(link) - target_x(link)) > 0.5:
                pieces.setdefault(target_row, []).append((source_x(link), target_x(link), n, "enter"))
            continue
        if abs(run - target_x(link)) > 0.5:
            pieces.setdefault(target_row, []).append((run, target_x(link), n, "enter"))
        if abs(run - source_x(link)) > 0.5:
            pieces.setdefault(source_row + 1, []).append((source_x(link), run, n, "leave"))

    def shares(n: int, x0: float, other: tuple) -> bool:
        # pieces starting at one block's output run together (one signal fanning out)
        return other[2] == layout.links[n].source and abs(other[3] - x0) < 0.5

    # Levels within a gap: 0 is nearest the row below. Pieces entering a card come first
    # (those reaching further along the card's edge sit lower, so no arrow crosses another's
    # drop), then pieces leaving the row above; pieces that overlap never share a level.
    levels: dict[tuple[int, str], int] = {}
    level_count: dict[int, int] = {}
    for gap_row, items in pieces.items():
        def order(item):
            x0, x1, _, piece = item
            leftward = x1 < x0
            return (piece != "enter", -x1 if leftward else x1)
        used: list[list[tuple[float, float, int, float]]] = []
        for x0, x1, n, piece in sorted(items, key=order):
            lo, hi = min(x0, x1) - 3, max(x0, x1) + 3
            level = next((k for k, spans in enumerate(used)
                          if all(hi < span[0] or span[1] < lo or shares(n, x0, span) for span in spans)), len(used))
            if level == len(used):
                used.append([])
            used[level].append((lo, hi, layout.links[n].source, x0))
            levels[(n, piece)] = level
        level_count[gap_row] = len(used)

    # Rows: each as tall as its tallest card, below a gap tall enough for its levels.
    row_heights = [0.0] * layout.row_count
    for i, row in enumerate(layout.rows):
        row_heights[row] = max(row_heights[row], float(heights[i]))
    gaps = [0.0 if layout.linear else max(gap, (level_count.get(r, 0) + 1) * level_step)
            for r in range(layout.row_count + 1)]
    row_top, y = [], top
    for r in range(layout.row_count):
        y += gaps[r]
        row_top.append(y)
        y += row_heights[r]
    total_height = y

    def gap_y(gap_row: int, level: int) -> float:
        gap_bottom = row_top[gap_row] if gap_row < layout.row_count else total_height + gaps[gap_row]
        return gap_bottom - gaps[gap_row] * (level + 1) / (level_count.get(gap_row, 0) + 1)

    cards = tuple(Rect(column_x[layout.columns[i]], row_top[layout.rows[i]], widths[i], float(heights[i]))
                  for i in range(len(layout.rows)))
    input_point = (input_port_x, top)

    paths = []
    for n, link in enumerate(layout.links):
        target = cards[link.target]
        start = input_point if link.source == INPUT else output_port(cards[link.source])
        end = (target_x(link), target.y)
        target_row = layout.rows[link.target]
        source_row = -1 if link.source == INPUT else layout.rows[link.source]
        points = [start]
        run = run_x(link)
        if run is not None and abs(run - start[0]) > 0.5:
            y_leave = gap_y(source_row + 1, levels[(n, "leave")])
            points += [(start[0], y_leave), (run, y_leave)]
        x_now = points[-1][0]
        if abs(x_now - end[0]) > 0.5:
            y_enter = gap_y(target_row, levels[(n, "enter")])
            points += [(x_now, y_enter), (end[0], y_enter)]
        points.append(end)
        paths.append(tuple(points))
    return Placement(cards, tuple(paths), input_point, total_width, total_height)


def segments_cross(points: Sequence[tuple[float, float]], rect: Rect, inset: float = 1.0) -> bool:
    """True if the polyline (horizontal and vertical pieces) passes through the rectangle's inside."""
    inner = Rect(rect.x + inset, rect.y + inset, rect.width - 2 * inset, rect.height - 2 * inset)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        box = Rect(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0))
        if inner.x < box.right and box.x < inner.right and inner.y < box.bottom and box.y < inner.bottom:
            return True
    return False


__all__ = ["INPUT", "Link", "GraphLayout", "layout_graph", "Rect", "Placement", "place", "card_widths", "gutters_width",
           "input_ports", "output_port", "segments_cross"]
