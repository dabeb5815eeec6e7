"""engine/resume.py: a run stopped anywhere (between two batches, mid-epoch, or at its
end), saved in the project and continued, gives bit-identical weights, optimizer state
and curves to the run that never stopped."""

import json

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.layers import ConfigError
from visualcnn.engine.model_io import decode_weights, encode_weights, model_to_dict, read_model_file
from visualcnn.engine.recipe import prepare_run
from visualcnn.engine.resume import capture, check_resume_section
from visualcnn.engine.training_config import TrainingConfig


def new_model():
    return Sequential([L.Input(shape=(28, 28, 1)), L.RandomRotation(0.05), L.Conv2D(4, 3, activation="relu"),
                       L.BatchNormalization(), L.MaxPooling2D(), L.Dropout(0.25), L.Flatten(),
                       L.Dense(10, activation="softmax")])


def mnist_like(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    return (x, y), (x[:30], y[:30])


CONFIG = TrainingConfig(optimizer="adam", learning_rate=0.003, batch_size=32, epochs=3, validation_split=0.2,
                        seed=4, reduce_lr_on_plateau=True, reduce_lr_patience=1, reduce_lr_factor=0.5,
                        early_stopping=True, patience=5, restore_best_weights=True)


def losses(run, stop_after=None):
    out = []
    for i, report in enumerate(run, start=1):
        out.append((type(report).__name__, report.epoch, getattr(report, "batch", 0), report.loss))
        if stop_after is not None and i == stop_after:
            break
    return out


def save_and_reopen(model, run, config):
    """The project file round trip: weights and the resume section written and read back."""
    text = json.dumps(model_to_dict(model, training=config, weights=encode_weights(model),
                                    sections={"resume": capture(model, run, config)}))
    opened = read_model_file(text)
    reopened = opened.model
    reopened.build(seed=config.seed)
    reopened.set_weights(decode_weights(reopened, opened.weights))
    return reopened, opened.sections["resume"]


@pytest.mark.parametrize("stop_after", [4, 6, 7, 8])  # mid-epoch, last batch, epoch end, next
def test_a_run_stopped_anywhere_and_continued_is_bit_identical(stop_after):
    straight = new_model()
    prepared = prepare_run(straight, CONFIG, mnist_like())
    reference = losses(prepared.run)
    assert prepared.steps_per_epoch == 6

    first = new_model()
    config_first = CONFIG
    prepared = prepare_run(first, config_first, mnist_like())
    before = losses(prepared.run, stop_after)
    prepared.run.close()  # the window's Stop, between two batches
    reopened, section = save_and_reopen(first, prepared.run, config_first)

    # continue for what is left: the epoch in progress counts as one of the epochs asked for
    left = CONFIG.epochs - section["epochs_done"]
    prepared = prepare_run(reopened, TrainingConfig.from_dict({**CONFIG.to_dict(), "epochs": left}), mnist_like(),
                           resume=section)
    after = losses(prepared.run)
    assert before + after == reference  # every loss of every step and epoch, exactly
    assert all(np.array_equal(a, b) for a, b in zip(reopened.get_weights(), straight.get_weights()))
    assert reopened.optimizer.iterations == straight.optimizer.iterations == 18
    assert all(np.array_equal(a, b) for a, b in zip(reopened.optimizer._m, straight.optimizer._m))
    assert all(np.array_equal(a, b) for a, b in zip(reopened.optimizer._v, straight.optimizer._v))
    assert reopened.optimizer.learning_rate == straight.optimizer.learning_rate  # ReduceLROnPlateau's doing


def test_without_the_saved_generators_the_continuation_differs():
    """The test above can fail: dropping the data-order and dropout states changes the weights."""
    first = new_model()
    prepared = prepare_run(first, CONFIG, mnist_like())
    losses(prepared.run, 6)
    prepared.run.close()
    straight = new_model()
    losses(prepare_run(straight, TrainingConfig.from_dict({**CONFIG.to_dict(), "epochs": 2}), mnist_like()).run)
    reopened, section = save_and_reopen(first, prepared.run, CONFIG)
    section = dict(section, layer_generators={})  # dropout and rotation restart from the seed instead
    losses(prepare_run(reopened, TrainingConfig.from_dict({**CONFIG.to_dict(), "epochs": 1}), mnist_like(),
                       resume=section).run)
    assert not all(np.array_equal(a, b) for a, b in zip(reopened.get_weights(), straight.get_weights()))


def test_resume_refuses_other_weights_other_data_and_a_damaged_section():
    first = new_model()
    prepared = prepare_run(first, CONFIG, mnist_like())
    losses(prepared.run, 3)
    prepared.run.close()
    reopened, section = save_and_reopen(first, prepared.run, CONFIG)
    with pytest.raises(ValueError, match="cannot continue training: the run being continued trained on 192 images"):
        prepare_run(reopened, CONFIG, mnist_like(300), resume=section)
    other = new_model()
    other.build(seed=99)
    with pytest.raises(ValueError, match="belongs to other weights"):
        prepare_run(other, CONFIG, mnist_like(), resume=section)
    with pytest.raises(ValueError, match="same batch size"):
        prepare_run(reopened, TrainingConfig.from_dict({**CONFIG.to_dict(), "batch_size": 16}), mnist_like(),
                    resume=section)
    damaged = dict(section)
    del damaged["optimizer"]
    with pytest.raises(ConfigError, match='"resume": optimizer is missing'):
        check_resume_section(damaged)
    for damaged in (dict(section, callbacks={"EarlyStopping": {"wait": "x"}}), dict(section, layer_generators=[]),
                    dict(section, optimizer=dict(section["optimizer"], iterations="7"))):
        with pytest.raises(ValueError, match="damaged; start a new run"):
            losses(prepare_run(reopened, CONFIG, mnist_like(), resume=damaged).run)
    tampered = dict(section, data_order=dict(section["data_order"], state={"state": "1", "inc": "3"}))
    with pytest.raises(ValueError, match="did not reach the saved state"):
        losses(prepare_run(reopened, CONFIG, mnist_like(), resume=tampered).run)


def test_the_section_is_plain_json_and_small():
    m = new_model()
    prepared = prepare_run(m, CONFIG, mnist_like())
    losses(prepared.run)
    section = capture(m, prepared.run, CONFIG)
    text = json.dumps(section)
    assert check_resume_section(json.loads(text)) == json.loads(text)
    assert section["epochs_done"] == 3 and section["batches_done"] == 0
    assert set(section["layer_generators"]) == {"random_rotation", "dropout"}
    # Adam's two slots, plus the best weights restore_best_weights keeps: ~4 copies of the weights
    weights = sum(w.nbytes for w in m.get_weights())
    assert len(text) < 6 * weights
