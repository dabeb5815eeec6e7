"""The window: title and unsaved state, files, presets, recent files, summary, screenshot."""

from __future__ import annotations

import json
import types

from PySide6.QtGui import QImage

from visualcnn.engine import load_model_file
from visualcnn.engine.summary import render_summary, summary_rows, totals_lines


def test_starts_empty_with_train_disabled_and_a_reason(window):
    assert len(window.document) == 0
    assert not window.train_button.isEnabled()
    assert "Add layers" in window.train_status.text()
    assert window.windowTitle().startswith("Untitled")
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Build", "Train", "Draw"]


def test_train_button_emits_the_request(seed_window, qtbot):
    with qtbot.waitSignal(seed_window.training_requested, timeout=1000):
        seed_window.train_button.click()


def test_summary_matches_the_summary_command(seed_window, seed_path, capsys):
    from visualcnn.commands import summary

    summary.run(types.SimpleNamespace(file=str(seed_path), json=False, line_length=88))
    assert seed_window.summary.text() == capsys.readouterr().out.rstrip("\n")
    report = load_model_file(seed_path).model.checked_report()
    assert seed_window.summary.cell_texts() == [(f"{r.name} ({r.class_name})", r.output_shape, r.params)
                                               for r in summary_rows(report)]
    assert seed_window.summary.totals.text().splitlines() == [line.strip() for line in totals_lines(report)]
    assert "Total params: 121,930 (476.29 KB)" in seed_window.summary.totals.text()


def test_summary_tab_shows_the_costs_for_one_image(seed_window):
    """Issue 13 item 6: under Keras's totals, the MACs and activation memory of one image (the
    numbers `visualcnn summary --costs` prints); each row's Param # tooltip works its MACs out."""
    text = seed_window.summary.costs.text()
    assert "Total MACs: 2,556,032 per image" in text  # 194,688 + 21,632 + 2,230,272 + 6,400 + 102,400 + 640
    assert "Activation memory: 152,488 B per image" in text
    tip = seed_window.summary.table.item(0, 2).toolTip()
    assert "MACs = 26*26*32 * 3*3*1 = 194,688 per image" in tip
    seed_window.inspector.editors["filters"].spin.setValue(8)  # conv2d: 26*26*8*9 = 48,672 MACs
    assert "MACs = 26*26*8 * 3*3*1 = 48,672" in seed_window.summary.table.item(0, 2).toolTip()
    assert "Total MACs: 2,556,032" not in seed_window.summary.costs.text()


def test_title_shows_unsaved_changes(seed_window):
    assert "seed_cnn (preset)" in seed_window.windowTitle()
    assert not seed_window.isWindowModified()
    seed_window.inspector.editors["filters"].spin.setValue(8)
    assert seed_window.isWindowModified()
    seed_window.undo_stack.undo()
    assert not seed_window.isWindowModified()


def test_save_open_round_trip(seed_window, tmp_path, dialogs):
    seed_window.inspector.editors["kernel_size"].height_spin.setValue(5)
    seed_window.pipeline.list_widget.select_row(2)
    path = tmp_path / "mine.json"
    assert seed_window.save_to(path)
    assert not seed_window.is_modified
    assert seed_window.windowTitle().startswith("mine.json")
    data = json.loads(path.read_text())
    assert data["window"] == {"selected": 2, "tab": 0}
    assert data["layers"][0]["config"]["kernel_size"] == [5, 5]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left
    # the engine reads what the window wrote
    engine_report = load_model_file(path).model.checked_report()
    assert engine_report.rows[0].output_shape == (None, 24, 24, 32)

    saved_entries = seed_window.document.entries
    seed_window.new_project()
    assert len(seed_window.document) == 0
    assert seed_window.open_file(path)
    assert seed_window.document.entries == saved_entries
    assert seed_window.pipeline.list_widget.current_row() == 2
    assert seed_window.recent_files()[0] == str(path.resolve())
    assert render_summary("mine", seed_window.document.report, 88) == render_summary("mine", engine_report, 88)
    assert not [d for d in dialogs if d[0] == "critical"]


def test_broken_file_shows_the_parse_error_and_leaves_the_project_untouched(seed_window, tmp_path, dialogs):
    seed_window.inspector.editors["filters"].spin.setValue(8)  # unsaved work
    before = (seed_window.document.entries, seed_window.document.input_shape, seed_window.windowTitle())
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1], "layers": [')
    assert not seed_window.open_file(broken, confirm=False)
    assert dialogs[-1][0] == "critical"
    assert "broken.json: not valid JSON" in dialogs[-1][2]
    assert (seed_window.document.entries, seed_window.document.input_shape, seed_window.windowTitle()) == before
    assert seed_window.is_modified
    assert seed_window.undo_stack.count() == 1
    bad_layer = tmp_path / "bad_layer.json"
    bad_layer.write_text(json.dumps({"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
                                     "layers": [{"class_name": "Conv2D", "config": {"filters": 0,
                                                                                    "kernel_size": 3}}]}))
    assert not seed_window.open_file(bad_layer, confirm=False)
    assert "filters" in dialogs[-1][2]
    assert seed_window.document.entries == before[0]


def test_replacing_unsaved_work_asks_first(seed_window, seed_path, dialogs):
    seed_window.inspector.editors["filters"].spin.setValue(8)
    assert seed_window.open_file(seed_path)  # the dialogs fixture answers Discard
    assert dialogs[-1][0] == "question"
    assert seed_window.document.entry(0).config["filters"] == 32


def test_presets_menu_lists_the_bundled_presets(window):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Presets")
    names = [a.text() for a in menu.actions()]
    assert names[0] == "Keras MNIST CNN"  # the seed CNN first, by its readable title
    assert {"LeNet-5", "Multilayer perceptron"} <= set(names)
    next(a for a in menu.actions() if a.text() == "LeNet-5").trigger()
    assert window.document.name == "lenet5"
    assert window.document.report.ok and window.train_button.isEnabled()


def test_layout_is_remembered(window, qtbot):
    window.summary_dock.hide()
    window.save_layout()
    from visualcnn.gui.main_window import MainWindow
    again = MainWindow(settings=window.settings)
    qtbot.addWidget(again)
    assert again.summary_dock.isHidden()


def test_screenshot_command_renders_the_real_window(tmp_path, seed_path, qapp, capsys):
    from visualcnn.cli import main

    out = tmp_path / "builder.png"
    assert main(["gui", "--screenshot", str(out), "--size", "1200x800", str(seed_path)]) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1200, 800)
    assert "wrote" in capsys.readouterr().out


def test_screenshot_of_a_broken_file_fails_cleanly(tmp_path, qapp, capsys):
    from visualcnn.cli import main

    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main(["gui", "--screenshot", str(tmp_path / "x.png"), str(broken)]) == 2
    assert "error: broken.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_file_with_more_layers_than_the_window_draws_is_refused_with_what_to_do(seed_window, tmp_path, dialogs):
    from visualcnn.gui.main_window import WINDOW_MAX_LAYERS

    before = seed_window.document.entries
    layers = [{"class_name": "Flatten", "config": {}}]
    layers += [{"class_name": "Dense", "config": {"units": 4}} for _ in range(WINDOW_MAX_LAYERS)]
    huge = tmp_path / "deep.json"
    huge.write_text(json.dumps({"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
                                "layers": layers}))
    assert not seed_window.open_file(huge, confirm=False)
    assert dialogs[-1][0] == "critical"
    assert f"{WINDOW_MAX_LAYERS + 1:,} layers" in dialogs[-1][2] and "visualcnn summary" in dialogs[-1][2]
    assert seed_window.document.entries == before
    # one layer fewer opens
    huge.write_text(json.dumps({"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
                                "layers": layers[:-1]}))
    assert seed_window.open_file(huge, confirm=False)
    assert len(seed_window.document.entries) == WINDOW_MAX_LAYERS


def test_summary_of_a_graph_shows_what_each_layer_is_connected_to(window):
    from visualcnn.resources import preset_path

    assert window.load_preset(preset_path("resnet_mnist"))
    rows = {cells[0]: cells for cells in window.summary.cell_texts()}
    report = window.document.report
    add = next(r for r in report.rows if r.layer.class_name == "Add")
    sources = [report.rows[j].name for j in add.inbound]
    assert len(sources) == 2
    assert rows[f"{add.name} (Add)"][3] == f"{sources[0]}, {sources[1]}"
    assert rows[f"{report.rows[0].name} ({report.rows[0].layer.class_name})"][3] == "input_layer"
    assert f"{sources[0]}[0][0]," in window.summary.text()  # the copied text is Keras's, indices and all
    window.load_preset(preset_path("seed_cnn"))  # a plain stack: Keras's three columns again
    assert {len(cells) for cells in window.summary.cell_texts()} == {3}
