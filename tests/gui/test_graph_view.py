"""The builder's graph view: layout on screen, connecting by dragging, drops on arrows, wrapping,
and a mismatched merge shown in place (offscreen Qt, real window)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from visualcnn.gui.document import LayerEntry
from visualcnn.gui.families import ERROR_COLOUR
from visualcnn.gui.graph_layout import INPUT
from visualcnn.gui.graph_view import DropTarget
from visualcnn.gui.palette import palette_mime_data
from visualcnn.gui.pipeline_view import MEMORY_ROLE


def conv(name, filters=8, k=3, **kw):
    return {"name": name, "filters": filters, "kernel_size": [k, k], "padding": "same", "activation": "relu", **kw}


def residual_with_projection():
    """stem -> conv -> conv -> Add(conv, 1x1 projection of the stem) -> pool -> flatten -> dense"""
    return [
        LayerEntry("Conv2D", conv("stem")),
        LayerEntry("Conv2D", conv("conv_a", 16, strides=[2, 2])),
        LayerEntry("Conv2D", conv("conv_b", 16)),
        LayerEntry("Conv2D", conv("proj", 16, k=1, strides=[2, 2]), ("stem",)),
        LayerEntry("Add", {"name": "add"}, ("conv_b", "proj")),
        LayerEntry("Flatten", {"name": "flatten"}),
        LayerEntry("Dense", {"name": "dense", "units": 10, "activation": "softmax"}),
    ]


def mismatched_add():
    return [
        LayerEntry("Conv2D", conv("conv2d", 32, padding="valid")),
        LayerEntry("MaxPooling2D", {"name": "max_pooling2d", "pool_size": [2, 2]}),
        LayerEntry("Conv2D", conv("conv2d_1", 32, padding="valid")),
        LayerEntry("Add", {"name": "add"}, ("max_pooling2d", "conv2d_1")),
        LayerEntry("Flatten", {"name": "flatten"}),
        LayerEntry("Dense", {"name": "dense", "units": 10}),
    ]


@pytest.fixture
def graph_window(window):
    def load(entries):
        window.document.reset((28, 28, 1), entries, name="graph")
        window.undo_stack.clear()
        view = window.pipeline.list_widget
        view.resize(900, 700)
        view.placement  # lay out now, at this size
        return view
    return load


def names(document):
    return [row.name for row in document.report.rows]


def sources(document, name):
    """The names feeding block `name`."""
    row = names(document).index(name)
    return [document.input_name if j == INPUT else names(document)[j] for j in document.inbound(row)]


def render(view) -> QImage:
    image = QImage(view.viewport().size(), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    view.viewport().render(painter, QPoint())
    painter.end()
    return image


def viewport_point(view, scene: QPointF) -> QPoint:
    return (scene - QPointF(view.horizontalScrollBar().value(), view.verticalScrollBar().value())).toPoint()


def test_a_linear_pipeline_is_one_column_of_cards_in_document_order(seed_window):
    view = seed_window.pipeline.list_widget
    layout, cards = view.graph_layout, view.placement.cards
    assert layout.linear and len(cards) == 8
    assert {c.x for c in cards} == {0} and {c.width for c in cards} == {view.viewport().width()}
    assert [c.y for c in cards] == sorted(c.y for c in cards)
    assert all(b.y == a.bottom for a, b in zip(cards, cards[1:]))  # stacked, as the list view did
    # the item model still answers as the list did (tests, inspector, accessibility)
    assert view.visualRect(view.model().index(7)).top() == round(cards[7].y)
    view.select_row(3)
    assert "max_pooling2d_1 (MaxPooling2D)" in view.accessibleDescription()


def test_a_residual_block_shows_two_columns_and_an_arrow_per_link(graph_window):
    view = graph_window(residual_with_projection())
    doc, layout, placement = view._document, view.graph_layout, view.placement
    assert not layout.linear
    row = {name: i for i, name in enumerate(names(doc))}
    conv_a, proj = placement.cards[row["conv_a"]], placement.cards[row["proj"]]
    assert conv_a.y == proj.y and proj.x > conv_a.right  # the two paths side by side
    assert placement.cards[row["add"]].x == conv_a.x
    links = {(link.source, link.target) for link in layout.links}
    expected = {(j, i) for i in range(len(doc)) for j in doc.inbound(i)}
    assert links == expected and len(layout.links) == sum(len(doc.inbound(i)) for i in range(len(doc)))
    # the arrow from the projection to the Add is drawn: ink halfway down its vertical run
    n = next(n for n, link in enumerate(layout.links) if (link.source, link.target) == (row["proj"], row["add"]))
    (x0, y0), (x1, y1) = placement.paths[n][0], placement.paths[n][1]
    image = render(view)
    x, y = (x0 + x1) / 2, (y0 + y1) / 2
    ink = min((image.pixelColor(viewport_point(view, QPointF(x + dx, y))) for dx in (-2, -1, 0, 1, 2)),
              key=QColor.lightness)  # the line is antialiased across a pixel or two
    assert ink.lightness() < 160, ink.name()
    # selecting any node, a merge included, shows it in the inspector
    view.select_row(row["add"])
    assert view.window().inspector.row == row["add"]


def test_dragging_from_an_output_port_to_a_block_connects_them_and_undo_restores(graph_window, qtbot):
    view = graph_window(residual_with_projection())
    doc, stack = view._document, view.window().undo_stack
    before = [e for e in doc.entries]
    row = {name: i for i, name in enumerate(names(doc))}
    start = viewport_point(view, view.output_port(row["conv_a"]))
    target = view.card_rect(row["add"])
    end = viewport_point(view, QPointF(target.center().x(), target.top() + 12))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    assert view.connecting
    qtbot.mouseMove(view.viewport(), pos=end)
    assert view.connect_target() == row["add"]
    assert view.can_take(row["add"]) and not view.can_take(row["stem"])  # no loops
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert not view.connecting
    assert sources(doc, "add") == ["conv_b", "proj", "conv_a"]  # a merge takes one more input
    assert stack.count() == 1
    stack.undo()
    assert list(doc.entries) == before


def test_a_refused_connection_is_said_and_not_pushed(graph_window, qtbot):
    view = graph_window(residual_with_projection())
    messages = []
    view.message_posted.connect(messages.append)
    row = {name: i for i, name in enumerate(names(view._document))}
    view.begin_connect(row["add"])
    assert not view.finish_connect(view.card_rect(row["stem"]).center())  # would make a loop
    assert view.window().undo_stack.count() == 0 and messages and messages[-1]


def test_dropping_add_on_an_arrow_inserts_a_merge_on_that_link(graph_window):
    view = graph_window(residual_with_projection())
    doc, stack = view._document, view.window().undo_stack
    row = {name: i for i, name in enumerate(names(doc))}
    # the stem feeds conv_a and proj: drop an Add on the arrow stem -> proj
    n = next(n for n, link in enumerate(view.graph_layout.links) if (link.source, link.target) == (row["stem"],
                                                                                                   row["proj"]))
    points = view.placement.paths[n]
    (x0, y0), (x1, y1) = points[-2], points[-1]
    target = view.drop_target_at(QPointF(viewport_point(view, QPointF((x0 + x1) / 2, (y0 + y1) / 2))))
    assert (target.kind, target.value) == ("link", n)
    assert view.handle_drop_at(palette_mime_data("Add"), target)
    added = names(doc)[view.current_row()]
    assert doc.entry(view.current_row()).class_name == "Add"
    assert sources(doc, added) == ["stem"] and sources(doc, "proj") == [added]
    assert sources(doc, "conv_a") == ["stem"]  # the other link is untouched
    assert stack.count() == 1
    stack.undo()
    assert sources(doc, "proj") == ["stem"] and "Add" not in [e.class_name for e in doc.entries][:4]


def test_dropping_a_layer_between_cards_of_a_straight_run_inserts_it_there(graph_window):
    view = graph_window(residual_with_projection())
    doc = view._document
    row = {name: i for i, name in enumerate(names(doc))}
    between = (view.card_rect(row["conv_a"]).bottom() + view.card_rect(row["conv_b"]).top()) / 2
    x = view.card_rect(row["conv_a"]).center().x()
    target = view.drop_target_at(QPointF(viewport_point(view, QPointF(x, between))))
    assert target.kind == "link"
    assert view.handle_drop_at(palette_mime_data("BatchNormalization"), target)
    assert names(doc)[row["conv_a"] + 1] == "batch_normalization"
    assert sources(doc, "batch_normalization") == ["conv_a"] and sources(doc, "conv_b") == ["batch_normalization"]


def test_wrap_in_residual_block_adds_the_skip_and_the_add(seed_window):
    view = seed_window.pipeline.list_widget
    doc, stack = seed_window.document, seed_window.undo_stack
    view.select_row(2)  # conv2d_1 ...
    view.select_row(3, extend=True)  # ... to max_pooling2d_1: a run of two blocks
    assert view.selected_rows() == (2, 3) and view.wrap_action.isEnabled()
    assert view.wrap_action in next(a.menu() for a in seed_window.menuBar().actions()
                                    if a.text() == "&Edit").actions()
    view.wrap_action.trigger()
    classes = [e.class_name for e in doc.entries]
    assert "Add" in classes and stack.count() == 1
    add = classes.index("Add")
    assert "max_pooling2d_1" in sources(doc, names(doc)[add])  # the wrapped run's output ...
    fed = set(sources(doc, names(doc)[add])) - {"max_pooling2d_1"}
    assert fed and fed <= set(names(doc)[:add])  # ... and a skip from before it (or its projection)
    assert not view.graph_layout.linear
    stack.undo()
    assert [e.class_name for e in doc.entries] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
                                                   "Dense", "Dropout", "Dense"]
    assert view.graph_layout.linear


def test_a_mismatched_add_is_red_in_place_with_the_engines_message(graph_window):
    view = graph_window(mismatched_add())
    doc = view._document
    add = names(doc).index("add")
    report = doc.report.rows[add]
    assert report.status == "error"
    for word in ("max_pooling2d", "conv2d_1", "(None, 13, 13, 32)", "(None, 11, 11, 32)"):
        assert word in report.error
    texts = view.model().index(add).data(MEMORY_ROLE)
    assert texts["error"] == report.error
    view.select_row(0)  # the red border is the card's own, not the selection's
    image = render(view)
    card = view.card_rect(add)
    red = QColor(ERROR_COLOUR)

    def reddest(x, y0, y1):  # the strongest ink across a thin line (antialiasing blurs it)
        ink = [image.pixelColor(viewport_point(view, QPointF(x, y / 2))) for y in range(int(2 * y0), int(2 * y1))]
        return min(ink, key=lambda c: c.green())

    border = reddest(card.center().x(), card.top(), card.top() + 5)
    assert abs(border.red() - red.red()) < 40 and abs(border.green() - red.green()) < 40, border.name()
    # the arrows into the merge are red too
    links = view.graph_layout.links
    n = next(n for n, link in enumerate(links) if link.target == add and link.source == add - 1)
    (_, y0), (x1, y1) = view.placement.paths[n][-2], view.placement.paths[n][-1]
    arrow = reddest(x1, y0, y1)
    assert arrow.red() > 150 and arrow.green() < 120, arrow.name()
    # the card is tall enough for the whole message
    assert view.sizeHintForRow(add) > view.sizeHintForRow(0)


def test_keyboard_moves_between_columns_and_shift_extends_the_selection(graph_window, qtbot):
    view = graph_window(residual_with_projection())
    row = {name: i for i, name in enumerate(names(view._document))}
    view.setFocus()
    view.select_row(row["conv_a"])
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.current_row() == row["proj"]
    qtbot.keyClick(view, Qt.Key.Key_Left)
    assert view.current_row() == row["conv_a"]
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert view.selected_rows() == (row["conv_a"], row["conv_b"])
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.selected_rows() == (row["conv_b"] + 1,)


def test_any_layer_dropped_on_a_branch_arrow_sits_on_that_link_only(graph_window):
    view = graph_window(residual_with_projection())
    doc = view._document
    row = {name: i for i, name in enumerate(names(doc))}
    n = next(n for n, link in enumerate(view.graph_layout.links) if (link.source, link.target) == (row["stem"],
                                                                                                   row["proj"]))
    assert view.handle_drop_at(palette_mime_data("BatchNormalization"), DropTarget("link", n))
    assert sources(doc, "proj") == ["batch_normalization"] and sources(doc, "batch_normalization") == ["stem"]
    assert sources(doc, "conv_a") == ["stem"]  # the stem's other consumer keeps it


def test_a_layer_dropped_on_the_lower_half_of_a_card_goes_after_it(graph_window):
    view = graph_window(residual_with_projection())
    doc = view._document
    row = {name: i for i, name in enumerate(names(doc))}
    card = view.card_rect(row["stem"])
    target = view.drop_target_at(QPointF(viewport_point(view, QPointF(card.left() + 20, card.bottom() - 6))))
    assert (target.kind, target.value) == ("after", row["stem"])
    assert view.handle_drop_at(palette_mime_data("Dropout"), target)
    assert sources(doc, "dropout") == ["stem"]
    assert sources(doc, "conv_a") == ["dropout"] and sources(doc, "proj") == ["dropout"]  # takes over both


def test_the_input_has_an_output_port_too_in_a_graph(graph_window, qtbot):
    view = graph_window(residual_with_projection())
    doc = view._document
    add = names(doc).index("add")
    start = viewport_point(view, view.output_port(INPUT))
    assert view.port_at(view.output_port(INPUT)) == INPUT
    end = viewport_point(view, view.card_rect(add).center())
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), pos=end)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert sources(doc, "add") == ["conv_b", "proj", doc.input_name]


def test_an_arrow_says_what_it_links(graph_window):
    view = graph_window(residual_with_projection())
    row = {name: i for i, name in enumerate(names(view._document))}
    n = next(n for n, link in enumerate(view.graph_layout.links) if (link.source, link.target) == (row["proj"],
                                                                                                   row["add"]))
    assert view.link_text(n).startswith("proj \u2192 add (input 2 of 2)")


def test_in_a_plain_column_a_drop_lands_between_cards_as_in_the_list(seed_window):
    view = seed_window.pipeline.list_widget
    card = view.card_rect(2)
    upper = view.drop_target_at(QPointF(viewport_point(view, QPointF(40, card.top() + 4))))
    lower = view.drop_target_at(QPointF(viewport_point(view, QPointF(40, card.bottom() - 4))))
    assert (upper.kind, upper.value) == ("row", 2) and (lower.kind, lower.value) == ("row", 3)
    assert view.link_at(QPointF(40, card.top())) == -1  # no arrows in a plain column


def test_zoom_lays_the_graph_out_again_with_bigger_cards(graph_window, qtbot):
    view = graph_window(residual_with_projection())
    window = view.window()
    before = view.sizeHintForRow(0)
    window.zoom.zoom_in_action.trigger()
    qtbot.waitUntil(lambda: view.sizeHintForRow(0) > before)  # cards follow the font, as in the list
    window.zoom.reset_action.trigger()
    qtbot.waitUntil(lambda: view.sizeHintForRow(0) == before)


def test_removing_an_arrow_disconnects_and_undo_restores(graph_window):
    view = graph_window(residual_with_projection())
    doc, stack = view._document, view.window().undo_stack
    row = {name: i for i, name in enumerate(names(doc))}
    n = next(n for n, link in enumerate(view.graph_layout.links) if (link.source, link.target) == (row["proj"],
                                                                                                   row["add"]))
    assert view.disconnect_link(n)
    assert sources(doc, "add") == ["conv_b"] and stack.count() == 1
    assert "not used" in doc.report.rows[row["proj"]].error  # the engine says the dangling block is unused
    # a block's only input cannot be removed: said, not pushed
    only = next(n for n, link in enumerate(view.graph_layout.links) if link.target == row["conv_b"])
    assert not view.disconnect_link(only) and stack.count() == 1
    stack.undo()
    assert sources(doc, "add") == ["conv_b", "proj"]


def test_connecting_by_keyboard(graph_window, qtbot):
    view = graph_window(residual_with_projection())
    doc = view._document
    row = {name: i for i, name in enumerate(names(doc))}
    view.setFocus()
    view.select_row(row["conv_a"])
    view.connect_action.trigger()
    assert view.connecting and view.connect_target() > row["conv_a"]
    for _ in range(len(doc)):
        if view.connect_target() == row["add"]:
            break
        qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.connect_target() == row["add"]
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert not view.connecting
    assert sources(doc, "add") == ["conv_b", "proj", "conv_a"]
    view.connect_action.trigger()
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not view.connecting and view.window().undo_stack.count() == 1


def test_a_connecting_drag_resting_near_the_bottom_scrolls_on(window, qtbot):
    from pathlib import Path

    assert window.load_preset(Path(__file__).resolve().parents[2] / "resources" / "presets" / "resnet_mnist.json")
    view = window.pipeline.list_widget
    view.resize(700, 500)
    bar = view.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=viewport_point(view, view.output_port(0)))
    assert view.connecting
    qtbot.mouseMove(view.viewport(), pos=QPoint(200, view.viewport().height() - 5))
    qtbot.waitUntil(lambda: bar.value() > 60, timeout=3000)  # several steps without moving the mouse
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not view.connecting and window.undo_stack.count() == 0


def test_a_narrow_card_names_its_block_in_full_in_its_tooltip(graph_window):
    entries = [LayerEntry("Conv2D", conv("stem"))] + [
        LayerEntry("Conv2D", conv(f"a_rather_long_branch_name_{k}", k=1), ("stem",)) for k in range(4)]
    entries.append(LayerEntry("Concatenate", {"name": "mixed"}, tuple(f"a_rather_long_branch_name_{k}"
                                                                    for k in range(4))))
    view = graph_window(entries)
    view.resize(560, 600)
    branch = names(view._document).index("a_rather_long_branch_name_2")
    assert view.placement.cards[branch].width < view.placement.cards[0].width / 3  # four side by side
    assert view.card_tooltip(branch).startswith("a_rather_long_branch_name_2 (Conv2D)\n")
    assert not view.card_tooltip(0).startswith("stem")  # a wide card shows its name itself
