"""The loss/accuracy legends: no validation entries without validation, bounded over many runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")


@pytest.fixture
def curves(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.panels.curves import CurvesPanel

    create_application()
    panel = CurvesPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 400)
    panel.show()
    return panel


def run(panel, epochs: int = 2, batches: int = 3, validation: bool = True) -> None:
    panel.begin_run(epochs)
    for epoch in range(1, epochs + 1):
        for batch in range(1, batches + 1):
            panel.add_step(SimpleNamespace(epoch=epoch, epochs=epochs, batch=batch, batches=batches,
                                           batch_loss=2.0 / (epoch + batch), batch_accuracy=0.1 * batch))
        panel.add_epoch(SimpleNamespace(epoch=epoch, epochs=epochs, loss=1.0 / epoch, accuracy=0.5,
                                        val_loss=0.9 / epoch if validation else None,
                                        val_accuracy=0.6 if validation else None))
    panel.end_run()


def test_no_validation_entries_when_the_split_is_zero(curves):
    run(curves, validation=False)
    for plot in ("loss", "accuracy"):
        labels = curves.legend_labels(plot)
        assert labels, "the current run's series are in the legend"
        assert not [text for text in labels if "validation" in text]


def test_validation_entry_appears_with_the_first_validation_value(curves):
    run(curves, validation=True)
    assert any("validation" in text for text in curves.legend_labels("loss"))
    assert any("validation" in text for text in curves.legend_labels("accuracy"))


def test_legend_stays_bounded_as_runs_pile_up(curves):
    from visualcnn.gui.panels.curves import EARLIER_RUNS_IN_LEGEND

    sizes = []
    for _ in range(8):
        run(curves, validation=True)
        sizes.append(len(curves.legend_labels("loss")))
    assert curves.run_count == 8  # every run is still drawn
    assert max(sizes) == 3 + EARLIER_RUNS_IN_LEGEND
    assert sizes[-1] == sizes[-4]  # stopped growing
    labels = curves.legend_labels("loss")
    assert labels[0].startswith("run 8:")
    assert "run 1 (earlier)" not in labels  # the oldest runs left the legend


def test_clear_empties_the_legend(curves):
    run(curves)
    curves.clear()
    assert curves.legend_labels("loss") == []


def test_chart_fonts_follow_the_widget_font(curves):
    from PySide6.QtGui import QFont

    before = curves.loss_plot.getAxis("bottom").style["tickFont"].pointSizeF()
    font = QFont(curves.font())
    font.setPointSizeF(font.pointSizeF() * 2)
    curves.setFont(font)
    after = curves.loss_plot.getAxis("bottom").style["tickFont"].pointSizeF()
    assert after == pytest.approx(before * 2, rel=0.05)


def test_smoothed_curve_follows_recent_batches_when_only_some_batches_arrive(curves):
    # A fast model: the window receives every 15th batch of 300. Accuracy jumps from 0.1 to
    # 0.9 at batch 150; 60 batches later the smoothed curve (about 10 batches) must be there.
    curves.begin_run(1)
    for batch in range(15, 301, 15):
        accuracy = 0.1 if batch <= 150 else 0.9
        curves.add_step(SimpleNamespace(epoch=1, epochs=1, batch=batch, batches=300,
                                        batch_loss=1.0 - accuracy, batch_accuracy=accuracy))
    x, y = curves.series("smooth_accuracy")
    at_210 = y[list(x).index(pytest.approx(210 / 300))]
    assert at_210 > 0.85
    assert y[-1] == pytest.approx(0.9, abs=1e-3)
