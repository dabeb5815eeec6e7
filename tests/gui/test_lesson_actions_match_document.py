"""The lesson engine's simulation of Show me / change (engine/lessons/simulate.py) edits and names blocks
exactly as the window's document does, so a later step's layer names mean the same in both."""

import pytest

from visualcnn.engine.lessons import Action, merged_config, merged_training, state_of
from visualcnn.engine.lessons.simulate import apply_action
from visualcnn.engine.model_io import load_model_file
from visualcnn.gui.document import PipelineDocument
from visualcnn.resources import preset_path


def perform(doc: PipelineDocument, action: Action) -> None:
    """How the Lessons panel maps an action to one document call (API note NOTE_L1_API.md)."""
    a = action.args
    if action.action == "set_config":
        row = doc.row_named(a["layer"])
        doc.set_layer_config(row, merged_config(doc.entries[row].config, a["config"]))
    elif action.action == "insert_after":
        doc.insert_after(doc.row_named(a["layer"]), a["class"], a.get("config") or {})
    elif action.action == "remove":
        doc.remove_layer(doc.row_named(a["layer"]))
    elif action.action == "set_training":
        doc.set_training(merged_training(doc.training, a["settings"]))
    elif action.action == "wrap_residual":
        doc.wrap_residual(doc.row_named(a["first"]), doc.row_named(a["last"]))
    elif action.action == "set_input_shape":
        doc.set_input_shape(a["shape"])


SCRIPTS = {
    "seed_cnn": [
        Action("insert_after", {"layer": "max_pooling2d", "class": "Conv2D",
                                "config": {"filters": 8, "kernel_size": 3, "padding": "same"}}),
        Action("set_config", {"layer": "conv2d_1", "config": {"filters": 32}}),
        Action("wrap_residual", {"first": "conv2d_1", "last": "conv2d_1"}),
        Action("insert_after", {"layer": "conv2d", "class": "BatchNormalization"}),
        Action("insert_after", {"layer": "conv2d_1", "class": "Conv2D",
                                "config": {"filters": 8, "kernel_size": 3, "padding": "same"}}),
        Action("remove", {"layer": "dropout"}),
        Action("remove", {"layer": "add"}),
        Action("set_training", {"settings": {"optimizer": "sgd", "batch_size": 32}}),
        Action("set_input_shape", {"shape": [32, 32, 1]}),
    ],
    "resnet_mnist": [
        Action("insert_after", {"layer": "block1_add", "class": "Dropout", "config": {"rate": 0.2}}),
        Action("remove", {"layer": "block1_bn2"}),
        Action("insert_after", {"layer": "stem_conv", "class": "Conv2D", "config": {"filters": 32, "kernel_size": 1}}),
    ],
}


@pytest.mark.parametrize("preset", sorted(SCRIPTS))
def test_every_action_names_and_links_blocks_as_the_document(qapp, preset):
    model_file = load_model_file(preset_path(preset))
    doc = PipelineDocument()
    doc.load_model_file(model_file)
    state = state_of(doc)
    for action in SCRIPTS[preset]:
        state = apply_action(state, action)
        perform(doc, action)
        mirrored = state_of(doc)
        assert state.names == doc.names, action
        assert state.entries == mirrored.entries, action
        assert state.training == doc.training and tuple(state.input_shape) == tuple(doc.input_shape)
        assert state.report().total_params == doc.report.total_params


def test_goals_and_grading_take_the_document_itself(qapp):
    from visualcnn.engine.lessons import Condition, Step, evaluate_goal, grade, true_answer

    doc = PipelineDocument()
    doc.load_model_file(load_model_file(preset_path("seed_cnn")))
    names_before = doc.names
    step = Step("Predict", "predict", quantity="params", layer="conv2d",
                change=(Action("set_config", {"layer": "conv2d", "config": {"filters": 8}}),))
    assert true_answer(step, doc).value == 80
    assert grade(step, doc, "3*3*1*8 + 8").correct
    assert doc.names == names_before and doc.report.rows[0].params == 320  # grading never edits the document
    goal = [Condition("params", {"layer": "conv2d", "at_most": 100}), Condition("setting", {"key": "optimizer",
                                                                                          "equals": "adam"})]
    assert evaluate_goal(goal, doc).lines == ("✘ conv2d has 320 parameters (goal: at most 100)", "✔ optimizer is adam")
    perform(doc, step.change[0])
    assert evaluate_goal(goal, doc).met


def test_every_bundled_lesson_walks_the_same_in_the_document_and_the_checker(qapp):
    """lesson check follows each bundled lesson on a simulation: the window must end every step
    with the same blocks, names and settings."""
    from visualcnn.engine.lessons import apply_actions, bundled_lessons, load_lesson
    from visualcnn.engine.lessons.format import EXTRA_TRAIN_SETTINGS

    lessons = bundled_lessons()
    assert lessons, "no bundled lessons"
    walked = 0
    for path in lessons:
        lesson = load_lesson(path)
        doc = PipelineDocument()
        doc.load_model_file(load_model_file(lesson.model_path))
        state = state_of(doc)
        for step in lesson.steps:
            actions = step.show_me if step.kind == "do" else step.change if step.kind == "predict" else ()
            if step.kind == "train":
                settings = {k: v for k, v in step.settings.items() if k not in EXTRA_TRAIN_SETTINGS}
                actions = (Action("set_training", {"settings": settings}),) if settings else ()
            state = apply_actions(state, actions)
            for action in actions:
                perform(doc, action)
            walked += len(actions)
            assert state.names == doc.names, (path.name, step.label)
            assert state.entries == state_of(doc).entries, (path.name, step.label)
            assert state.training == doc.training, (path.name, step.label)
    assert walked > 0
