"""Teacher mode in the real window: a project's "teacher" section locks the pipeline and the
settings, hides panels, shows the banner; a run's end keeps the locks; the teacher unlocks."""

from __future__ import annotations

import json

from visualcnn.engine.model_io import load_model_file

LOCKED = {"lock": ["pipeline", "settings"], "hide": ["palette", "draw", "explain"], "note": "Change nothing yet."}


def open_with_teacher(window, tmp_path, seed_path, section=LOCKED):
    data = json.loads(seed_path.read_text())
    data["teacher"] = section
    path = tmp_path / "class.json"
    path.write_text(json.dumps(data))
    assert window.open_file(path, confirm=False)
    return path


def test_a_projects_teacher_section_locks_hides_and_shows_the_banner(qtbot, window, tmp_path, seed_path):
    mode = window.teacher_mode
    assert not mode.active and mode.toolbar.isHidden()
    open_with_teacher(window, tmp_path, seed_path)
    assert mode.active and not mode.toolbar.isHidden()
    assert mode.banner.text.text() == ("Locked by your teacher: the pipeline and the training settings. "
                                       "Hidden: the layer palette, the Draw tab and the Explain menu. "
                                       "Change nothing yet.")
    # the pipeline: the widgets and actions a run locks, but Train stays
    assert window.teacher_locked and not window.locked and window.lock_banner.isHidden()
    view = window.pipeline.list_widget
    assert view.read_only and not window.palette_widget.isEnabled() and not window.inspector.form_host.isEnabled()
    assert not window.pipeline.input_widget.isEnabled()
    assert not view.delete_action.isEnabled() and not window.undo_action.isEnabled()
    assert window.train_button.isEnabled()
    # the settings form
    controls = window.train_panel.controls
    for widget in (controls.batch_size, controls.epochs, controls.learning_rate, controls.optimizer):
        assert not widget.isEnabled()
    assert "Locked by your teacher." in controls.batch_size.toolTip()
    assert controls.start_button.isEnabled() or controls.start_button.toolTip().startswith("Cannot train")
    # hidden: dock and its View toggle, a tab in both bars, a menu
    assert window.palette_dock.isHidden() and not window.palette_dock.toggleViewAction().isVisible()
    draw = window.tabs.indexOf(window.draw_page)
    assert not window.tabs.isTabVisible(draw) and not window.tab_bar.isTabVisible(draw)
    assert not window.explain_action.associatedObjects()[0].menuAction().isVisible()
    assert window.presets_menu.menuAction().isVisible()  # not hidden by this section
    # Reset Layout (or coming back to the Build tab) does not bring a hidden dock back
    window.reset_layout()
    qtbot.waitUntil(lambda: window.palette_dock.isHidden())
    assert not window.summary_dock.isHidden()


def test_the_end_of_a_run_keeps_the_teachers_locks(qtbot, window, tmp_path, seed_path):
    open_with_teacher(window, tmp_path, seed_path, {"lock": ["pipeline", "settings"]})
    controls = window.train_panel.controls
    window.train_panel.set_training_defaults(window.document.training)
    controls.train_images.setEnabled(True)   # the test's tiny run: 320 images, set as a teacher would
    controls.train_images.setValue(320)
    controls.train_images.setEnabled(False)
    with qtbot.waitSignal(window.train_panel.run_finished, timeout=120_000):
        window.train_button.click()
        assert window.locked and not window.lock_banner.isHidden()
    qtbot.waitUntil(lambda: not controls.epochs.isEnabled())  # the form is locked again after the run
    assert not window.locked and window.teacher_locked
    assert window.pipeline.list_widget.read_only and not window.palette_widget.isEnabled()
    assert not window.inspector.form_host.isEnabled()
    assert window.document.trained_weights is not None  # the run trained the locked network
    assert not window.undo_action.isEnabled()


def test_the_teacher_unlocks_for_now_or_removes_the_locks(qtbot, window, tmp_path, seed_path):
    path = open_with_teacher(window, tmp_path, seed_path)
    mode = window.teacher_mode
    dialog = mode.unlock_dialog()
    assert dialog.code.isHidden()  # no code set: anyone can unlock
    dialog.buttons.button(dialog.buttons.StandardButton.Cancel).click()
    assert mode.active
    mode.unlock_dialog().now_button.click()
    assert not mode.active and mode.toolbar.isHidden() and mode.unlocked_for_session
    assert not window.pipeline.list_widget.read_only and window.inspector.form_host.isEnabled()
    assert window.train_panel.controls.epochs.isEnabled()
    assert "Locked by your teacher." not in window.train_panel.controls.batch_size.toolTip()
    assert not window.palette_dock.isHidden() and window.tabs.isTabVisible(window.tabs.indexOf(window.draw_page))
    assert window.document.section("teacher") is not None and not window.is_modified  # still in the project
    # reopening locks again; removing takes the section out of the saved project
    assert window.open_file(path, confirm=False) and mode.active
    mode.unlock_dialog().remove_button.click()
    assert not mode.active and window.document.section("teacher") is None and window.is_modified
    assert "teacher settings" in window.unsaved_changes_text()
    assert window.save_to(path)
    assert "teacher" not in load_model_file(path).sections


def test_an_unlock_code_keeps_students_out(qtbot, seed_window):
    mode = seed_window.teacher_mode
    dialog = mode.lock_dialog()
    dialog.choices.lock_boxes["pipeline"].setChecked(True)
    dialog.choices.code.setText("owl 42")
    dialog.accept()
    section = seed_window.document.section("teacher")
    assert len(section["unlock_code_sha256"]) == 64 and "owl" not in json.dumps(section)
    unlock = mode.unlock_dialog()
    assert not unlock.code.isHidden()
    unlock.code.setText("owl")
    unlock.now_button.click()
    assert mode.active and unlock.isVisible()
    assert unlock.message.text() == "That is not the unlock code: ask your teacher."
    unlock.code.setText("owl 42")
    unlock.now_button.click()
    assert not mode.active and not unlock.isVisible()
    # editing the locks again keeps the code unless a new one is typed
    dialog = mode.lock_dialog()
    dialog.choices.hide_boxes["draw"].setChecked(True)
    dialog.accept()
    assert seed_window.document.section("teacher")["unlock_code_sha256"] == section["unlock_code_sha256"]


def test_lock_and_hide_dialog_writes_the_section(qtbot, seed_window):
    mode = seed_window.teacher_mode
    assert mode.lock_action.isEnabled() and not mode.unlock_action.isEnabled()
    dialog = mode.lock_dialog()
    dialog.choices.lock_boxes["pipeline"].setChecked(True)
    dialog.choices.hide_boxes["summary"].setChecked(True)
    dialog.choices.note.setText("Look, do not touch.")
    dialog.accept()
    assert seed_window.document.section("teacher") == {"lock": ["pipeline"], "hide": ["summary"],
                                                       "note": "Look, do not touch."}
    assert mode.active and seed_window.teacher_locked and seed_window.summary_dock.isHidden()
    assert mode.unlock_action.isEnabled()
    assert mode.save_as_lesson_action in seed_window.save_as_action.associatedObjects()[0].actions()


def test_a_locked_pipeline_can_be_read_but_not_edited(qtbot, window, tmp_path, seed_path):
    """Students select blocks, hover them and read their derivations; no path edits the pipeline."""
    from PySide6.QtCore import Qt

    from visualcnn.gui.mime import MIME_TYPE

    open_with_teacher(window, tmp_path, seed_path, {"lock": ["pipeline"]})
    view, document = window.pipeline.list_widget, window.document
    before = document.to_dict()
    view.select_row(2)
    assert window.inspector.row == 2 and window.inspector.derivation.text().startswith("input shape")
    assert window.inspector.derivation.isEnabled()  # readable, not greyed out
    assert view.model().data(view.model().index(2), Qt.ItemDataRole.ToolTipRole)
    view.delete_current()
    view.duplicate_current()
    view.move_current(1)
    view.insert_layer(0, "Dropout", {"rate": 0.5})
    view.begin_connect(0)
    assert not view.connecting
    mime = view.mime_data_for_row(1)
    assert mime.hasFormat(MIME_TYPE) and not view.handle_drop(mime, 0)
    window.pipeline.list_widget.select_row(0)
    assert not view.delete_action.isEnabled() and not view.duplicate_action.isEnabled()
    assert document.to_dict() == before and window.undo_stack.count() == 0
    window.teacher_mode.unlock_for_session()
    view.delete_current()
    assert len(document) == len(before["layers"]) - 1  # unlocked: the same call edits again


def test_apply_locks_without_changing_the_project_until_another_loads(qtbot, seed_window, seed_path):
    mode = seed_window.teacher_mode
    mode.apply({"lock": ["pipeline"], "hide": ["summary"]})
    assert mode.active and seed_window.teacher_locked and seed_window.summary_dock.isHidden()
    assert seed_window.document.section("teacher") is None and not seed_window.is_modified
    assert seed_window.load_preset(seed_path)  # a new project: its own (no) teacher settings hold
    assert not mode.active and not seed_window.teacher_locked and not seed_window.summary_dock.isHidden()


def test_unlocking_the_settings_gives_each_widget_its_own_state_back(qtbot, seed_window):
    from PySide6.QtWidgets import QCheckBox

    controls = seed_window.train_panel.controls
    controls.seed.setEnabled(False)  # as a setting that depends on another (a patience without its check)
    marked = QCheckBox("an extra setting", seed_window.train_panel)
    marked.setProperty("trainingSetting", True)  # outside the form: marked for the lock
    mode = seed_window.teacher_mode
    start = controls.start_button.isEnabled()
    mode.apply({"lock": ["settings"]})
    assert not controls.epochs.isEnabled() and not marked.isEnabled() and not controls.seed.isEnabled()
    assert controls.start_button.isEnabled() == start  # Start is not a setting
    mode.apply(None)
    assert controls.epochs.isEnabled() and marked.isEnabled()
    assert not controls.seed.isEnabled()  # it was off before the lock: it stays off


def test_docks_a_teacher_hid_come_back_at_the_next_start(qtbot, window, tmp_path, seed_path):
    from visualcnn.gui.main_window import MainWindow

    open_with_teacher(window, tmp_path, seed_path, {"lock": ["pipeline"], "hide": ["summary"]})
    assert window.summary_dock.isHidden() and not window.teacher_mode.toolbar.isHidden()
    window.undo_stack.setClean()
    window.close()  # saves the layout: the summary hidden, the banner shown
    again = MainWindow(settings=window.settings)
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(lambda: not again.summary_dock.isHidden())
    assert again.teacher_mode.toolbar.isHidden() and not again.teacher_mode.active
    assert again.settings.value("teacher/hidden_docks", []) in ([], None, "")


def test_hiding_the_train_tab_hides_the_build_tabs_train_line(qtbot, seed_window):
    seed_window.show()
    assert seed_window.train_status.isVisible()
    seed_window.teacher_mode.apply({"hide": ["train"]})
    assert not seed_window.train_button.isVisible() and not seed_window.train_status.isVisible()
    seed_window.teacher_mode.apply(None)
    assert seed_window.train_button.isVisible() and seed_window.train_status.isVisible()


def test_the_banner_text_and_button_fit_inside_the_bar_when_it_wraps(qtbot, seed_window):
    seed_window.resize(1000, 700)
    seed_window.show()
    qtbot.waitExposed(seed_window)
    note = "A long note for the class that needs more than one line at this width. " * 3
    seed_window.teacher_mode.apply({"lock": ["pipeline"], "hide": ["draw", "explain"], "note": note})
    banner = seed_window.teacher_mode.banner

    def fits():
        return (banner.text.geometry().bottom() < banner.height()
                and banner.unlock_button.geometry().top() >= 0
                and banner.unlock_button.geometry().bottom() < banner.height()
                and seed_window.teacher_mode.toolbar.height() >= banner.height())

    qtbot.waitUntil(fits)
    assert banner.text.heightForWidth(banner.text.width()) > banner.text.fontMetrics().height()  # it wraps
