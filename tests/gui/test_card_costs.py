"""The builder's cards show the multiply-adds per image (issue 13 item 6): a short figure
beside the params when every card has room, the worked line always in the tooltip."""

from __future__ import annotations

from visualcnn.engine import load_model_file
from visualcnn.gui.graph_card import CardPainter, block_texts, block_tooltip, short_count
from visualcnn.resources import preset_dir


def seed_report():
    return load_model_file(preset_dir() / "seed_cnn.json").model.analyse()


def test_short_count():
    assert [short_count(n) for n in (640, 6_400, 21_632, 194_688, 999_500, 2_230_272)] == \
        ["640", "6.4K", "21.6K", "195K", "1M", "2.23M"]


def test_card_texts_and_tooltip_carry_the_costs():
    rows = seed_report().rows
    assert block_texts(rows[0])["macs"] == "195K MACs"
    assert block_texts(rows[2])["macs"] == "2.23M MACs"
    assert block_texts(rows[4])["macs"] == ""  # Flatten only moves values: nothing to show
    tooltip = block_tooltip(rows[0], (28, 28, 1)).splitlines()
    assert "MACs = 26*26*32 * 3*3*1 = 194,688 per image" in tooltip
    assert "activations = 26*26*32 * 4 B = 86,528 B per image" in tooltip


def test_only_wide_cards_show_the_figure(qapp):
    from PySide6.QtGui import QFont, QFontMetrics, QPalette

    font = QFont()
    painter = CardPainter(font, QPalette())
    m = QFontMetrics(font).horizontalAdvance("m")
    assert painter.roomy(60 * m) and not painter.roomy(40 * m)
