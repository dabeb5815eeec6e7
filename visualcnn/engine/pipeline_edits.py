"""A pipeline as a graph of nodes, and the edits of it (pure: no Qt).

The one home of the pipeline's edits and of how blocks are named: the window's document
(gui/document.py) and the lesson checker's replay of Show me / change
(engine/lessons/simulate.py) both edit through these functions, so a block gets the same
name in both and a later lesson step can refer to it.

PipelineDocument stores entries in topological order, each naming the blocks that feed
it (`inbound`, empty = "the entry before"). An edit is easier and safer to state on
nodes with identities than on names and positions: `graph_of` turns the entries into
nodes (key = the entry's current row), an edit function returns the target node list
(new nodes get new keys), `canonical_entries` writes it back as entries (inbound by
name only where a block is not fed by the entry before, referenced blocks' names pinned
in their config so the reference survives later inserts), and `plan_steps` finds the
row-level steps (remove, move, insert, set) the document applies one by one, so views
get their usual per-row signals and every step has an exact inverse for undo.

Edit functions raise EditRefused with one line for the user when the edit cannot be
made (a loop, a missing link, a selection that is not a straight run).
"""

from __future__ import annotations

import bisect
import copy
from dataclasses import dataclass, field
from typing import Sequence

from .layers import LAYER_CLASSES, ConfigError, snake_case
from .model import unique_name

INPUT = "input"  # the key of the model input among a node's sources


class EditRefused(ConfigError):
    """The edit cannot be made; the message says why and what to do, in one line."""


@dataclass(frozen=True)
class LayerEntry:
    """One block: a Keras class name, its config (engine-acceptable JSON) and the names of the
    blocks feeding it (empty: the entry before it, or the input for the first)."""

    class_name: str
    config: dict = field(default_factory=dict)
    inbound: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "inbound", tuple(self.inbound))  # a list from JSON compares equal

    def copy(self) -> "LayerEntry":
        return LayerEntry(self.class_name, copy.deepcopy(self.config), self.inbound)


@dataclass(frozen=True)
class Missing:
    """A source name that names no block (kept as written so the row shows the error)."""

    name: str


@dataclass(frozen=True)
class Node:
    key: object  # the entry's row before the edit, or a fresh object for a new block
    class_name: str
    config: dict
    sources: tuple  # keys of the feeding nodes; INPUT for the model input

    def with_sources(self, sources) -> "Node":
        return Node(self.key, self.class_name, self.config, tuple(sources))

    def with_config(self, config: dict) -> "Node":
        return Node(self.key, self.class_name, config, self.sources)


class NewKey:
    """Identity of a block the edit adds (compared by identity)."""

    def __repr__(self) -> str:
        return f"<new {id(self):x}>"


def is_merge(class_name: str) -> bool:
    return bool(getattr(LAYER_CLASSES.get(class_name), "merge", False))


def layer_names(entries: Sequence) -> list[str]:
    """The name each entry's layer gets, as Sequential.add names them: its config's name when
    set and not taken by an earlier entry, else the next free snake_case name (conv2d_1)."""
    names: list[str] = []
    taken: set[str] = set()
    counters: dict[str, int] = {}  # keeps naming linear for huge files
    stems: dict[str, str] = {}
    for entry in entries:
        name = entry.config.get("name")
        if not isinstance(name, str) or not name or name in taken:
            stem = stems.get(entry.class_name) or stems.setdefault(entry.class_name, snake_case(entry.class_name))
            name = unique_name(stem, taken, counters)
        taken.add(name)
        names.append(name)
    return names


def graph_of(entries: Sequence[LayerEntry], names: Sequence[str], input_name: str) -> list[Node]:
    """Nodes keyed by row; a source is a row, INPUT, or Missing(name)."""
    row_of = {name: row for row, name in enumerate(names)}
    nodes = []
    for row, entry in enumerate(entries):
        if not entry.inbound:
            sources = (row - 1 if row else INPUT,)
        else:
            sources = tuple(INPUT if name == input_name else row_of.get(name, Missing(name)) for name in entry.inbound)
        nodes.append(Node(row, entry.class_name, entry.config, sources))
    return nodes


def source_indices(nodes: Sequence[Node]) -> tuple[tuple[int, ...], ...]:
    """The analysis's inbound: row indices, -1 for the input; a missing name points past the end
    (the analysis reports it as a block that does not exist)."""
    row_of = {node.key: row for row, node in enumerate(nodes)}
    missing = len(nodes)
    return tuple(tuple(-1 if s == INPUT else row_of.get(s, missing) for s in node.sources) for node in nodes)


def canonical_entries(nodes: Sequence[Node], input_name: str) -> list[LayerEntry]:
    """Entries for the nodes in this order: inbound only where a block is not fed by the one
    before it, and every block named in an inbound carries that name in its config (an
    automatic name such as conv2d_1 would move to another block when one is inserted above)."""
    names = layer_names(nodes)
    row_of = {node.key: row for row, node in enumerate(nodes)}
    referenced: set[int] = set()
    inbounds = []
    for row, node in enumerate(nodes):
        default = (nodes[row - 1].key if row else INPUT,)
        if node.sources == default:
            inbounds.append(())
            continue
        written = []
        for source in node.sources:
            if source == INPUT:
                written.append(input_name)
            elif isinstance(source, Missing):
                written.append(source.name)
            else:
                written.append(names[row_of[source]])
                referenced.add(row_of[source])
        inbounds.append(tuple(written))
    entries = []
    for row, node in enumerate(nodes):
        config = node.config
        if row in referenced and config.get("name") != names[row]:
            config = {"name": names[row], **{k: v for k, v in config.items() if k != "name"}}
        # Configs are shared, not copied: the document replaces entries, never edits one in place.
        entries.append(LayerEntry(node.class_name, config, inbounds[row]))
    return entries


def name_new_blocks(nodes: Sequence[Node], names_in_use: Sequence[str]) -> list[Node]:
    """The nodes with each new, unnamed block given a name used by no block (existing or new)."""
    taken = set(names_in_use) | {n.config["name"] for n in nodes if isinstance(n.config.get("name"), str)}
    out = []
    for node in nodes:
        if isinstance(node.key, NewKey) and not node.config.get("name"):
            name = unique_name(snake_case(node.class_name), taken)
            taken.add(name)
            node = node.with_config({"name": name, **node.config})
        out.append(node)
    return out


def edited_entries(nodes: Sequence[Node], names_in_use: Sequence[str],
                   input_name: str) -> tuple[list[Node], list[LayerEntry]]:
    """The nodes an edit produced and their entries, named by the rule both the window and
    the lesson checker follow: in a plain stack every block is named from the top as
    Sequential.add names them; in a graph a new, unnamed block gets a name no block has
    (an automatic one such as conv2d_1 would take the name of a block further down,
    renaming it and the links naming it). `names_in_use`: the names before the edit."""
    entries = canonical_entries(nodes, input_name)
    if any(entry.inbound for entry in entries):
        nodes = name_new_blocks(nodes, names_in_use)
        entries = canonical_entries(nodes, input_name)
    return list(nodes), entries


def row_key(nodes: Sequence[Node], row: int):
    return INPUT if row == -1 else nodes[row].key


def _check_row(nodes: Sequence[Node], row: int, allow_input: bool = False) -> None:
    low = -1 if allow_input else 0
    if not isinstance(row, int) or not low <= row < len(nodes):
        raise EditRefused(f"there is no block at row {row}")


def _name(names: Sequence[str], row: int, input_name: str) -> str:
    return input_name if row == -1 else names[row]


# --- edits: each returns the target node list ---------------------------------------------------


def insert_after(nodes: list[Node], row: int, class_name: str, config: dict) -> tuple[list[Node], NewKey]:
    """A new block fed by `row` (-1: the input) placed right after it; it takes over the
    block's consumers (in a stack: it goes between the block and the next one)."""
    _check_row(nodes, row, allow_input=True)
    key, source = NewKey(), row_key(nodes, row)
    out = [node.with_sources(key if s == source else s for s in node.sources) for node in nodes]
    out.insert(row + 1, Node(key, class_name, copy.deepcopy(config), (source,)))
    return out, key


def remove(nodes: list[Node], row: int) -> list[Node]:
    """Delete a block: its consumers take its input (a merge takes all of a deleted merge's
    inputs; a merge fed twice by the same block then keeps it once)."""
    _check_row(nodes, row)
    gone = nodes[row]
    out = []
    for node in nodes:
        if node is gone:
            continue
        if gone.key in node.sources:
            if is_merge(node.class_name):
                sources = [t for s in node.sources for t in (gone.sources if s == gone.key else (s,))]
                node = node.with_sources(dict.fromkeys(sources))  # keeps the order, drops repeats
            else:
                node = node.with_sources(gone.sources[0] if s == gone.key else s for s in node.sources)
        out.append(node)
    return out


def set_config(nodes: list[Node], row: int, config: dict) -> list[Node]:
    _check_row(nodes, row)
    out = list(nodes)
    out[row] = nodes[row].with_config(copy.deepcopy(config))
    return out


def _descendants(nodes: Sequence[Node], key) -> set:
    found, todo = set(), [key]
    consumers: dict = {}
    for node in nodes:
        for s in node.sources:
            consumers.setdefault(s, []).append(node.key)
    while todo:
        for k in consumers.get(todo.pop(), ()):
            if k not in found:
                found.add(k)
                todo.append(k)
    return found


def stable_topological_order(nodes: list[Node]) -> list[Node]:
    """The nodes in an order where every source comes first, as close to the current order as
    possible (Kahn's algorithm, always taking the earliest ready node)."""
    import heapq

    row_of = {node.key: row for row, node in enumerate(nodes)}
    waiting = {node.key: len({s for s in node.sources if s in row_of}) for node in nodes}
    consumers: dict = {}
    for node in nodes:
        for s in dict.fromkeys(node.sources):
            if s in row_of:
                consumers.setdefault(s, []).append(node.key)
    ready = [row_of[k] for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        row = heapq.heappop(ready)
        order.append(nodes[row])
        for k in consumers.get(nodes[row].key, ()):
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, row_of[k])
    if len(order) != len(nodes):
        raise EditRefused("the links would make a loop; a network must flow one way")
    return order


def connect(nodes: list[Node], names: Sequence[str], source: int, target: int, input_name: str) -> list[Node]:
    """Link source's output to target: a merge gains an input, another block has its input
    replaced. Rows are reordered (stably) when the source comes after the target."""
    check_connect(nodes, names, source, target, input_name)
    key, node = row_key(nodes, source), nodes[target]
    sources = (*node.sources, key) if is_merge(node.class_name) else (key,)
    out = list(nodes)
    out[target] = node.with_sources(sources)
    return out if source < target else stable_topological_order(out)


def check_connect(nodes: Sequence[Node], names: Sequence[str], source: int, target: int, input_name: str) -> None:
    """EditRefused when source cannot feed target (no such row, itself, already, a loop); cheap
    enough to ask for every card under a drag."""
    _check_row(nodes, source, allow_input=True)
    _check_row(nodes, target)
    src, dst = _name(names, source, input_name), names[target]
    if source == target:
        raise EditRefused(f"cannot connect '{dst}' to itself; a network must flow one way")
    key, node = row_key(nodes, source), nodes[target]
    if key in node.sources and (is_merge(node.class_name) or len(node.sources) == 1):
        raise EditRefused(f"'{src}' already feeds '{dst}'")
    if key != INPUT and source > target and key in _descendants(nodes, node.key):
        raise EditRefused(f"cannot connect '{src}' to '{dst}': '{dst}' already feeds '{src}', so the link "
                          "would make a loop; a network must flow one way")


def disconnect(nodes: list[Node], names: Sequence[str], source: int, target: int, input_name: str) -> list[Node]:
    _check_row(nodes, source, allow_input=True)
    _check_row(nodes, target)
    src, dst = _name(names, source, input_name), names[target]
    key, node = row_key(nodes, source), nodes[target]
    if key not in node.sources:
        raise EditRefused(f"'{src}' does not feed '{dst}'")
    rest = tuple(s for s in node.sources if s != key)
    if not rest:
        raise EditRefused(f"'{src}' is the only input of '{dst}'; a block needs an input: connect another "
                          "block to it first, or delete it")
    out = list(nodes)
    out[target] = node.with_sources(rest)
    return out


def insert_merge(nodes: list[Node], names: Sequence[str], source: int, target: int, class_name: str,
                 config: dict, input_name: str) -> tuple[list[Node], NewKey]:
    """A block on the link source -> target only: fed by source (a merge's first input; connect
    the other branches to it), feeding target in source's place. Any class: a BatchNormalization
    dropped on a skip sits on the skip alone."""
    _check_row(nodes, source, allow_input=True)
    _check_row(nodes, target)
    key, node = row_key(nodes, source), nodes[target]
    if key not in node.sources:
        raise EditRefused(f"'{_name(names, source, input_name)}' does not feed '{names[target]}'")
    merge = NewKey()
    out = list(nodes)
    out[target] = node.with_sources(merge if s == key else s for s in node.sources)
    out.insert(target, Node(merge, class_name, copy.deepcopy(config), (key,)))
    return out, merge


def straight_run(nodes: Sequence[Node], row: int) -> tuple[int, int]:
    """The rows first..last around `row` that form a chain: every block has one input, the
    one before it, and is the only block using it. A block moves only within its run."""
    _check_row(nodes, row)
    consumers: dict = {}
    for r, node in enumerate(nodes):
        for s in dict.fromkeys(node.sources):
            consumers.setdefault(s, []).append(r)

    def linked(upper: int) -> bool:  # upper and upper + 1 are a chain link
        below = nodes[upper + 1]
        return (len(nodes[upper].sources) == 1 and below.sources == (nodes[upper].key,)
                and consumers.get(nodes[upper].key) == [upper + 1])

    if len(nodes[row].sources) != 1:
        return row, row
    first = last = row
    while first > 0 and len(nodes[first - 1].sources) == 1 and linked(first - 1):
        first -= 1
    while last + 1 < len(nodes) and linked(last):
        last += 1
    return first, last


def move(nodes: list[Node], names: Sequence[str], source: int, target: int) -> list[Node]:
    """Reorder a straight run: the run's input feeds its new first block, its consumers the new last."""
    _check_row(nodes, source)
    _check_row(nodes, target)
    first, last = straight_run(nodes, source)
    if first == last:
        raise EditRefused(f"'{names[source]}' cannot move: it joins or feeds other branches; change its links "
                          "instead, or delete it and add it where you want it")
    if not first <= target <= last:
        raise EditRefused(f"'{names[source]}' can only move along its own branch (rows {first + 1} to {last + 1}); "
                          "to place it elsewhere, delete it and add it there")
    chain = list(nodes[first:last + 1])
    moved = chain.pop(source - first)
    chain.insert(target - first, moved)
    head_sources, old_tail, new_tail = nodes[first].sources, nodes[last].key, chain[-1].key
    relinked = [node.with_sources(head_sources if i == 0 else (chain[i - 1].key,)) for i, node in enumerate(chain)]
    after = [node.with_sources(new_tail if s == old_tail else s for s in node.sources) for node in nodes[last + 1:]]
    return [*nodes[:first], *relinked, *after]


def wrap_residual(nodes: list[Node], names: Sequence[str], first: int, last: int, input_shape, output_shape,
                  input_name: str) -> tuple[list[Node], list[NewKey]]:
    """Keras's residual block around rows first..last: the skip from the selection's input to a new
    Add after `last` (main path first, as layers.add([x, shortcut])), then Activation relu; a 1x1
    Conv2D projection with the needed filters and strides on the skip when the shapes differ.

    input_shape / output_shape: the analysis's shapes entering `first` and leaving `last`."""
    _check_row(nodes, first)
    _check_row(nodes, last)
    if first > last:
        first, last = last, first
    run_first, run_last = straight_run(nodes, first)
    if len(nodes[first].sources) != 1 or not run_first <= last <= run_last:
        raise EditRefused("Wrap in residual block needs consecutive blocks on one path, each fed by the one "
                          "before it; select a straight run of blocks")
    if input_shape is None or output_shape is None:
        raise EditRefused("the selection's shapes are unknown: fix the errors in it first, then wrap it")
    skip = nodes[first].sources[0]
    added: list[NewKey] = []
    new_nodes: list[Node] = []
    if tuple(input_shape) != tuple(output_shape):
        projection = _projection(input_shape, output_shape, names[first], names[last])
        proj_key = NewKey()
        added.append(proj_key)
        new_nodes.append(Node(proj_key, "Conv2D", projection, (skip,)))
        skip = proj_key
    add_key, relu_key = NewKey(), NewKey()
    added += [add_key, relu_key]
    new_nodes.append(Node(add_key, "Add", {}, (nodes[last].key, skip)))
    new_nodes.append(Node(relu_key, "Activation", {"activation": "relu"}, (add_key,)))
    tail = nodes[last].key
    after = [node.with_sources(relu_key if s == tail else s for s in node.sources) for node in nodes[last + 1:]]
    return [*nodes[:last + 1], *new_nodes, *after], added


def _projection(input_shape, output_shape, first_name: str, last_name: str) -> dict:
    """The 1x1 Conv2D config that turns the skip's shape into the main path's: filters = the
    output channels, strides = the size reduction (each must be exact)."""
    where = f"the selection ('{first_name}' to '{last_name}') turns {tuple(input_shape)} into {tuple(output_shape)}"
    if len(input_shape) != 4 or len(output_shape) != 4:
        raise EditRefused(f"{where}; a skip with a projection needs image-shaped input and output (height, width, "
                          "channels): leave Flatten and Dense out of the selection")
    strides = []
    for size_in, size_out in zip(input_shape[1:3], output_shape[1:3]):
        stride = -(-size_in // size_out)  # a 1x1 kernel gives ceil(size / stride) outputs
        if stride < 1 or -(-size_in // stride) != size_out:
            raise EditRefused(f"{where}; no 1x1 convolution stride maps {size_in} to {size_out} on the skip: "
                              "use 'same' padding in the selection so the size only shrinks by whole strides")
        strides.append(stride)
    config: dict = {"filters": int(output_shape[3]), "kernel_size": 1}
    if strides != [1, 1]:
        config["strides"] = strides[0] if strides[0] == strides[1] else strides
    return config


# --- the row-level steps between two entry lists -------------------------------------------------


def _longest_increasing(values: list[int]) -> set[int]:
    """Indices into `values` of one longest strictly increasing subsequence."""
    tails: list[int] = []
    tail_at: list[int] = []
    parent = [-1] * len(values)
    for i, value in enumerate(values):
        j = bisect.bisect_left(tails, value)
        if j == len(tails):
            tails.append(value)
            tail_at.append(i)
        else:
            tails[j] = value
            tail_at[j] = i
        parent[i] = tail_at[j - 1] if j else -1
    keep, i = set(), tail_at[-1] if tail_at else -1
    while i != -1:
        keep.add(i)
        i = parent[i]
    return keep


def plan_steps(current: Sequence[LayerEntry], target_nodes: Sequence[Node],
               target: Sequence[LayerEntry], moving: Sequence = ()) -> list[tuple]:
    """Steps turning `current` (rows = the node keys 0..n-1) into `target`: removes (bottom up),
    moves (fewest: the longest run already in order stays), inserts (top down), then sets of the
    entries that differ. ("remove", row) / ("move", source, target) / ("insert", row, entry) /
    ("set", row, entry). `moving`: keys the edit moves, moved rather than the blocks around them
    (the view follows the moved block)."""
    target_keys = [node.key for node in target_nodes]
    wanted = set(target_keys)
    rows = list(range(len(current)))
    steps: list[tuple] = []
    for row in reversed(range(len(rows))):
        if rows[row] not in wanted:
            steps.append(("remove", row))
            del rows[row]
    rank = {key: r for r, key in enumerate(target_keys)}
    staying = [k for k in rows if k not in set(moving)]
    if all(rank[a] < rank[b] for a, b in zip(staying, staying[1:])):
        placed = set(staying)
    else:
        placed = {rows[i] for i in _longest_increasing([rank[k] for k in rows])}
    survivors = set(rows)
    for key in [k for k in target_keys if k in survivors]:
        if key in placed:
            continue
        source = rows.index(key)
        rows.pop(source)
        position = 0
        for i, other in enumerate(rows):
            if other in placed and rank[other] < rank[key]:
                position = i + 1
        rows.insert(position, key)
        placed.add(key)
        if position != source:
            steps.append(("move", source, position))
    old = set(range(len(current)))
    entries = {key: current[key] for key in rows}
    for row, key in enumerate(target_keys):
        if key not in old:
            rows.insert(row, key)
            entries[key] = target[row]
            steps.append(("insert", row, target[row]))
    for row, key in enumerate(rows):
        if entries[key] != target[row]:
            steps.append(("set", row, target[row]))
    return steps


__all__ = ["LayerEntry", "Node", "NewKey", "Missing", "EditRefused", "INPUT", "layer_names", "graph_of",
           "canonical_entries", "source_indices", "plan_steps", "name_new_blocks", "edited_entries", "insert_after",
           "remove", "set_config", "connect", "check_connect", "disconnect", "insert_merge", "move", "wrap_residual",
           "straight_run", "is_merge"]
