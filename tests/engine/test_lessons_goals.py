"""Do-step goals (one line per condition) and the actions of Show me / change on the model."""

import pytest

from visualcnn.engine.lessons import (Action, ActionError, Condition, ModelState, RunFacts, Step, apply_action,
                                      apply_actions, evaluate_goal, merged_training)
from visualcnn.engine.training_config import TrainingConfig
from visualcnn.resources import preset_path


@pytest.fixture(scope="module")
def seed():
    return ModelState.from_file(preset_path("seed_cnn"))


def lines(conditions, model, **kwargs):
    return evaluate_goal([Condition(check, args) for check, args in conditions], model, **kwargs).lines


def test_each_condition_gives_one_line_with_the_engines_number(seed):
    assert lines([("output_shape", {"layer": "max_pooling2d", "equals": [13, 13, 32]}),
                  ("total_params", {"at_most": 60_000}),
                  ("params", {"layer": "dense_1", "equals": 650}),
                  ("receptive_field", {"layer": "conv2d_1", "at_least": 10}),
                  ("macs", {"layer": "conv2d", "at_most": 200_000}),
                  ("macs", {"at_least": 1}),
                  ("has_layer", {"class": "BatchNormalization"}),
                  ("layer_count", {"at_most": 8}),
                  ("setting", {"key": "loss", "equals": "sparse_categorical_crossentropy"}),
                  ("setting", {"key": "batch_size", "at_least": 128}),
                  ("no_error", {})], seed) == (
        "✔ max_pooling2d output is 13x13x32",
        "✘ total parameters 121,930 (goal: at most 60,000)",
        "✔ dense_1 has 650 parameters (goal: exactly 650)",
        "✘ conv2d_1 sees 8x8 input pixels (goal: at least 10)",
        "✔ conv2d MACs per image 194,688 (goal: at most 200,000)",
        "✔ total MACs per image 2,556,032 (goal: at least 1)",
        "✘ 0 BatchNormalization layers (goal: at least 1)",
        "✔ 8 layers (goal: at most 8)",
        "✔ loss is sparse_categorical_crossentropy",
        "✘ batch_size is 64 (goal: at least 128)",
        "✔ no shape errors",
    )


def test_a_goal_is_met_only_when_every_condition_holds(seed):
    step = Step("Shrink", "do", goal=(Condition("total_params", {"at_most": 60_000}), Condition("no_error")))
    assert not evaluate_goal(step, seed).met
    smaller = apply_action(seed, Action("set_config", {"layer": "dense", "config": {"units": 16}}))
    status = evaluate_goal(step, smaller)
    assert status.met and status.lines == ("✔ total parameters 44,602 (goal: at most 60,000)", "✔ no shape errors")


def test_run_conditions_read_what_the_window_knows_of_the_last_run(seed):
    goal = [("trained", {}), ("test_accuracy", {"at_least": 0.98})]
    assert lines(goal, seed) == ("✘ not trained yet: train the model (Train tab)",) * 2
    assert lines(goal, seed, results=RunFacts(True, 0.9712)) == (
        "✔ the model is trained", "✘ test accuracy 97.12% (goal: at least 98.00%)")
    assert evaluate_goal([Condition(*g) for g in goal], seed, results={"trained": True, "test_accuracy": 0.99}).met


def test_errors_and_missing_layers_are_unmet_lines_not_exceptions(seed):
    broken = apply_action(seed, Action("set_config", {"layer": "conv2d", "config": {"kernel_size": [40, 40]}}))
    out = lines([("no_error", {}), ("output_shape", {"layer": "dense", "equals": [64]}),
                 ("params", {"layer": "nope", "at_most": 1})], broken)
    assert out[0].startswith("✘ the pipeline has an error: Conv2D 'conv2d'")
    assert out[1].startswith("✘ dense has no shape")
    assert out[2].startswith("✘ there is no layer named 'nope' (the layers are: conv2d, max_pooling2d")


def test_settings_come_from_the_model_or_the_argument(seed):
    sgd = merged_training(seed.training, {"optimizer": "sgd"})
    assert sgd.learning_rate == 0.01  # a new optimizer takes its own Keras default rate
    goal = [("setting", {"key": "optimizer", "equals": "sgd"})]
    assert lines(goal, seed) == ("✘ optimizer is adam (goal: sgd)",)
    assert lines(goal, seed, training_config=sgd) == ("✔ optimizer is sgd",)
    after = apply_action(seed, Action("set_training", {"settings": {"optimizer": "sgd", "learning_rate": 0.1}}))
    assert lines(goal, after) == ("✔ optimizer is sgd",) and after.training.learning_rate == 0.1


# --- actions -------------------------------------------------------------------------------------


def test_insert_in_a_plain_stack_names_blocks_from_the_top_as_the_window_does(seed):
    after = apply_action(seed, Action("insert_after", {"layer": "max_pooling2d", "class": "Conv2D",
                                                       "config": {"filters": 8, "kernel_size": 3}}))
    assert after.names == ("conv2d", "max_pooling2d", "conv2d_1", "conv2d_2", "max_pooling2d_1", "flatten",
                           "dense", "dropout", "dense_1")
    assert after.report().rows[2].output_shape == (None, 11, 11, 8)


def test_wrap_residual_adds_a_projection_add_and_relu_and_new_blocks_get_free_names(seed):
    same = apply_action(seed, Action("set_config", {"layer": "conv2d_1", "config": {"padding": "same"}}))
    wrapped = apply_action(same, Action("wrap_residual", {"first": "conv2d_1", "last": "conv2d_1"}))
    assert wrapped.names[2:7] == ("conv2d_1", "conv2d_2", "add", "activation", "max_pooling2d_1")
    projection = wrapped.entries[3]
    assert projection.config == {"name": "conv2d_2", "filters": 64, "kernel_size": 1}
    assert wrapped.entries[4].inbound == ("conv2d_1", "conv2d_2")
    assert wrapped.report().ok
    # in a graph, a new block takes a name no block has
    more = apply_action(wrapped, Action("insert_after", {"layer": "conv2d", "class": "Conv2D",
                                                         "config": {"filters": 32, "kernel_size": 1}}))
    assert more.names[1] == "conv2d_3" and more.names[3] == "conv2d_1"


def test_remove_set_input_shape_and_a_stride_on_the_seeds_200px_example(seed):
    after = apply_actions(seed, [Action("remove", {"layer": "dropout"}),
                                 Action("set_input_shape", {"shape": [200, 200, 1]}),
                                 Action("set_config", {"layer": "conv2d", "config": {"filters": 16, "kernel_size": [2, 2],
                                                                                     "strides": [2, 2]}})])
    assert "dropout" not in after.names
    assert after.report().rows[0].output_shape == (None, 100, 100, 16)


@pytest.mark.parametrize("action, fragment", [
    (Action("remove", {"layer": "conv2d_7"}), "no layer named 'conv2d_7'"),
    (Action("set_training", {"settings": {"loss": "hinge"}}), "loss expected one of"),
    (Action("set_input_shape", {"shape": [0, 3]}), "input shape must be"),
    (Action("wrap_residual", {"first": "conv2d", "last": "conv2d_1"}), "no 1x1 convolution stride maps 28 to 11"),
    (Action("wrap_residual", {"first": "conv2d", "last": "dense"}), "needs image-shaped input and output"),
    (Action("insert_after", {"layer": "conv2d", "class": "Conv3D"}), "unknown layer class 'Conv3D'"),
])
def test_an_action_that_cannot_be_done_is_one_line(seed, action, fragment):
    with pytest.raises(ActionError, match=fragment) as caught:
        apply_action(seed, action)
    assert "\n" not in str(caught.value)


def test_the_state_of_a_model_keeps_its_training_settings():
    from visualcnn.engine.model_io import load_model_file

    model_file = load_model_file(preset_path("resnet_mnist"))
    state = ModelState.from_model(model_file.model, model_file.training)
    assert state.training == model_file.training != TrainingConfig()
    assert state.report().total_params == model_file.model.count_params()
    assert state.names == tuple(layer.name for layer in model_file.model.layers)
