"""engine/schedules.py: Keras 3's CosineDecay and ExponentialDecay, an optimizer driven by
one, and the "schedule" training setting.

The expected numbers were computed with Keras 3 (KERAS_BACKEND=torch, /tmp/venvC): see
test_live_keras_agrees for the same cases against the real library when it is installed."""

import json

import numpy as np
import pytest

from visualcnn.engine.layers import ConfigError
from visualcnn.engine.optimizers import SGD, Adam, RMSprop
from visualcnn.engine.schedules import CosineDecay, ExponentialDecay
from visualcnn.engine.training_config import TrainingConfig

CASES = {
    "cosine": (lambda m: m.CosineDecay(0.002, 2814), [0, 1, 100, 1407, 2000, 2813, 2814, 5000],
               [0.0020000000949949026, 0.0019999993965029716, 0.0019937746692448854, 0.0009999999310821295,
                0.00038527740980498493, 5.960464899423812e-10, 0.0, 0.0]),
    "cosine_alpha": (lambda m: m.CosineDecay(0.1, 1000, alpha=0.1), [0, 250, 500, 999, 1000, 1200],
                     [0.10000000149011612, 0.08681981265544891, 0.05499999597668648, 0.01000022329390049,
                      0.010000000707805157, 0.010000000707805157]),
    "cosine_warmup": (lambda m: m.CosineDecay(0.0, 100, warmup_target=0.01, warmup_steps=10),
                      [0, 5, 10, 60, 110, 200],
                      [0.0, 0.004999999888241291, 0.009999999776482582, 0.004999999422580004, 0.0, 0.0]),
    "exponential": (lambda m: m.ExponentialDecay(0.01, 100, 0.5), [0, 50, 100, 250],
                    [0.009999999776482582, 0.007071067579090595, 0.004999999888241291, 0.0017677668947726488]),
    "staircase": (lambda m: m.ExponentialDecay(0.01, 100, 0.5, staircase=True), [0, 50, 99, 100, 250],
                  [0.009999999776482582, 0.009999999776482582, 0.009999999776482582, 0.004999999888241291,
                   0.0024999999441206455]),
}


class _Ours:
    CosineDecay, ExponentialDecay = CosineDecay, ExponentialDecay


@pytest.mark.parametrize("case", list(CASES))
def test_rates_equal_keras(case):
    make, steps, expected = CASES[case]
    schedule = make(_Ours)
    assert [schedule(t) for t in steps] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_live_keras_agrees():
    keras = pytest.importorskip("keras")
    for make, steps, _ in CASES.values():
        theirs, ours = make(keras.optimizers.schedules), make(_Ours)
        got = [float(np.float32(keras.ops.convert_to_numpy(theirs(t)))) for t in steps]
        assert [ours(t) for t in steps] == pytest.approx(got, rel=1e-6, abs=1e-12)
        assert ours.get_config() == theirs.get_config()


@pytest.mark.parametrize("schedule", [CosineDecay(0.01, 50, alpha=0.2, warmup_target=0.1, warmup_steps=5),
                                      ExponentialDecay(0.1, 7, 0.9, staircase=True, name="decay")])
def test_config_round_trip(schedule):
    config = schedule.get_config()
    again = type(schedule).from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    assert [again(t) for t in range(60)] == [schedule(t) for t in range(60)]


@pytest.mark.parametrize("make, message", [
    (lambda: CosineDecay(0.1, 0), "CosineDecay: `decay_steps` must be a finite number > 0. Received: decay_steps=0"),
    (lambda: CosineDecay(float("nan"), 10), "`initial_learning_rate` must be a finite number >= 0"),
    (lambda: CosineDecay(0.1, 10, alpha=-1), "Received: alpha=-1"),
    (lambda: ExponentialDecay(0.1, -5, 0.9), "ExponentialDecay: `decay_steps` must be a finite number > 0"),
    (lambda: ExponentialDecay(0.1, 5, "0.9"), "Received: decay_rate='0.9'"),
    (lambda: ExponentialDecay(0.1, 5, 0.9, staircase="yes"), "`staircase` must be True or False"),
    (lambda: CosineDecay(0.1, 10)(-1), "the step must be a number >= 0, received -1"),
])
def test_invalid_arguments_say_which_in_one_line(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        make()
    assert "\n" not in str(info.value)


# --- an optimizer with a schedule --------------------------------------------------------

def _problem():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    return w0, [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]


# Keras 3 (torch backend): Adam(CosineDecay(0.01, 4)) and SGD(ExponentialDecay(0.1, 2, 0.5),
# momentum=0.9) applying _problem()'s four gradients.
KERAS_ADAM = [[0.14082872867584229, -0.11744635552167892, 0.6605484485626221, 0.12374437600374222],
              [-0.5114163160324097, 0.3686927855014801, 1.296536922454834, 0.9281972646713257],
              [-0.686059832572937, -1.2867501974105835, -0.6119036078453064, 0.018080003559589386]]
KERAS_SGD = [[0.750596284866333, -0.10906025767326355, 1.1242523193359375, 0.43419796228408813],
             [-0.1410178542137146, 0.26114293932914734, 1.2736016511917114, 0.5404497981071472],
             [-0.6693418025970459, -1.8337745666503906, -0.5322953462600708, -0.3104867935180664]]


@pytest.mark.parametrize("make, expected", [
    (lambda: Adam(CosineDecay(0.01, 4)), KERAS_ADAM),
    (lambda: SGD(ExponentialDecay(0.1, 2, 0.5), momentum=0.9), KERAS_SGD),
])
def test_scheduled_optimizer_gives_keras_weights(make, expected):
    w, grads = _problem()
    optimizer = make()
    for g in grads:
        optimizer.step([w], [g])
    # float32 rounding apart (the constant-rate Adam differs from Keras by as much: ~5e-7)
    np.testing.assert_allclose(w, np.array(expected, np.float32), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [Adam, SGD, RMSprop])
def test_a_schedule_is_the_constant_path_with_the_scheduled_rates(cls):
    """Bit for bit: a scheduled step is a constant-rate step at schedule(iterations)."""
    schedule = CosineDecay(0.01, 3, alpha=0.1)
    w_scheduled, grads = _problem()
    w_constant = w_scheduled.copy()
    scheduled, constant = cls(schedule), cls(0.5)
    seen = []
    for t, g in enumerate(grads):
        assert scheduled.iterations == t and scheduled.learning_rate == schedule(t)
        seen.append(scheduled.learning_rate)
        scheduled.step([w_scheduled], [g])
        constant.learning_rate = schedule(t)
        constant.step([w_constant], [g])
        assert np.array_equal(w_scheduled, w_constant)
    assert seen[0] == pytest.approx(0.01) and seen[-1] == pytest.approx(0.001)  # past decay_steps: alpha * initial


def test_a_scheduled_optimizer_refuses_a_number_and_says_so():
    optimizer = Adam(ExponentialDecay(0.01, 10, 0.5))
    with pytest.raises(TypeError, match="learning rate is a ExponentialDecay schedule"):
        optimizer.learning_rate = 0.1
    assert optimizer.get_config()["learning_rate"] == {
        "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.01, "decay_steps": 10, "decay_rate": 0.5, "staircase": False,
                   "name": "ExponentialDecay"}}
    assert Adam(0.002).get_config()["learning_rate"] == 0.002 and Adam(0.002).schedule is None


# --- the "schedule" training setting ---------------------------------------------------------

def test_schedule_setting_round_trips_and_is_written_only_when_not_constant():
    assert "schedule" not in TrainingConfig().to_dict()  # files from before schedules stay the same
    assert TrainingConfig.from_dict({}).schedule == "constant"
    cosine = TrainingConfig(learning_rate=0.002, epochs=3, schedule="cosine")
    assert cosine.to_dict()["schedule"] == "cosine"
    assert TrainingConfig.from_dict(json.loads(json.dumps(cosine.to_dict()))) == cosine
    assert TrainingConfig.from_dict(TrainingConfig().to_dict()) == TrainingConfig()


@pytest.mark.parametrize("bad", ["cosine_decay", "Cosine", 1, None])
def test_unknown_schedule_is_refused_with_the_choices(bad):
    with pytest.raises(ConfigError, match=f"training: schedule expected one of constant, step, exponential, cosine, received {bad!r}"):
        TrainingConfig.from_dict({"schedule": bad})
