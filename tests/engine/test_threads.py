"""Training in a worker thread while the main thread keeps running Python and predicts.

numba's default workqueue layer aborts the process on concurrent parallel launches;
this is exactly the GUI's case (classify a drawn digit while training), so it is run
here for real: a crash would take the test process down.
"""

import threading

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L, parallel
from visualcnn.engine.training import run_in_thread, train


def _model():
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
                    L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                    L.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_predict_from_main_thread_while_training_runs():
    rng = np.random.default_rng(0)
    x = rng.random((1024, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    m = _model()
    m.predict(x[:1])  # compile outside the timed part
    reports = []
    worker = run_in_thread(train(m, x, y, batch_size=32, epochs=2), reports.append)
    predictions = 0
    ticks = 0
    while worker.is_alive():
        ticks += 1  # the main thread keeps running Python while training runs (nogil kernels)
        p = m.predict(x[:1])  # serial path automatically: another thread is training
        assert p.shape == (1, 10) and np.isfinite(p).all()
        m.activations(x[:1])
        m.input_gradients(x[:1], 3)
        predictions += 1
        # an explicit parallel predict is also safe under the threadsafe layer
        if parallel.PARALLEL_IS_THREADSAFE:
            m.predict(x[:4], serial=False)
    worker.join()
    assert predictions > 5 and ticks > 5
    assert len([r for r in reports if r.__class__.__name__ == "EpochReport"]) == 2
    assert m._training_thread is None


def _engine_kernels():
    """Every numba dispatcher defined in the engine's modules, by (module, name)."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import visualcnn.engine as engine

    found = {}
    for info in pkgutil.walk_packages(engine.__path__, "visualcnn.engine."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, Dispatcher):
                found[(value.py_func.__module__, value.py_func.__qualname__)] = value
    return found


def test_every_kernel_releases_the_gil():
    # A counter in the main thread cannot tell: the interpreter switches threads every 5 ms
    # even while a GIL-holding kernel runs between them. What keeps the window live is
    # that each compiled kernel is declared nogil, so check the declaration itself.
    kernels = _engine_kernels()
    modules = {module for module, _ in kernels}
    # the search really reaches the kernels (an empty walk would pass vacuously)
    assert {"visualcnn.engine.kernels.dense", "visualcnn.engine.kernels.normalization",
            "visualcnn.engine.kernels.conv.im2col_gemm", "visualcnn.engine.activations"} <= modules
    assert len(kernels) > 50
    holding = sorted(f"{module}.{name}" for (module, name), d in kernels.items() if not d.targetoptions.get("nogil"))
    assert holding == [], f"kernels that hold the GIL (the window would freeze while they run): {holding}"


def test_second_training_thread_is_refused():
    m = _model()
    x = np.zeros((64, 28, 28, 1), np.float32)
    y = np.zeros(64, int)
    run = train(m, x, y, batch_size=8)
    next(run)  # this thread now owns training
    errors = []

    def other():
        try:
            m.train_on_batch(x[:8], y[:8])
        except ValueError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    run.close()
    assert errors and "already being trained in another thread" in errors[0]


# --- threading layer and thread count --------------------------------------------------

def _tbb_installed():
    from importlib import metadata

    try:
        metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        return False
    return True


def test_tbb_is_the_threading_layer_when_tbb_is_installed():
    import numba
    import pytest

    if not _tbb_installed():
        pytest.skip("the tbb package is not installed here")
    assert parallel.preload_tbb() is not None  # found in <prefix>/lib, where pip puts it
    m = _model()
    m.predict(np.zeros((8, 28, 28, 1), np.float32), serial=False)  # a real parallel launch
    assert parallel.THREADING_LAYER == "tbb"
    assert numba.threading_layer() == "tbb"


class _Load:
    """A stand-in for machine_load.OtherPrograms: the cores other programs use, as set."""

    def __init__(self, others, cpus=2):
        self.others, self.cpus = others, cpus

    def cores_in_use(self):
        return self.others


NO_READING = _Load(None)  # macOS, Windows, a container: the timings alone decide


def _feed(governor, seconds_per_image_of, steps, images=64):
    for _ in range(steps):
        governor.step_done(seconds_per_image_of(governor.threads) * images, images)


def test_governor_drops_to_fewer_threads_when_they_are_faster():
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, enabled=True, load=NO_READING)
    try:
        assert g.threads == 2
        # as measured with a competing busy process: 2 threads slower than 1
        _feed(g, lambda t: {2: 1 / 2191, 1: 1 / 3825}[t], 10)
        assert g.choices and g.choices[-1][1] == 1 and g.threads == 1
    finally:
        g.close()


@pytest.mark.parametrize("two_thread_rate,expect", [(6450, 1), (6600, 1), (7200, 2)])
def test_governor_takes_the_second_thread_only_when_it_pays(two_thread_rate, expect):
    # as measured with one competing busy process: 2 threads about as fast as 1 (6,429-
    # 6,542 images/s); a tie (or a 2 % edge, within the noise) keeps 1 thread, a clear
    # gain takes 2
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, enabled=True, load=NO_READING)
    try:
        _feed(g, lambda t: {2: 1 / two_thread_rate, 1: 1 / 6450}[t], 10)
        assert g.choices and g.choices[-1][1] == expect and g.threads == expect
    finally:
        g.close()


def test_governor_keeps_all_threads_on_a_quiet_machine_and_rechecks():
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, recheck_every=20, enabled=True, load=NO_READING)
    try:
        _feed(g, lambda t: {2: 1 / 6000, 1: 1 / 3800}[t], 10)
        assert g.choices[-1][1] == 2 and g.threads == 2
        # load arrives: 2 threads get much slower; the governor measures again and drops
        _feed(g, lambda t: {2: 1 / 2000, 1: 1 / 3800}[t], 20)
        assert g.choices[-1][1] == 1
        # load goes away: the periodic re-check returns to 2 threads
        _feed(g, lambda t: {2: 1 / 6000, 1: 1 / 3800}[t], 40)
        assert g.choices[-1][1] == 2
    finally:
        g.close()


@pytest.mark.parametrize("rates,expect", [({2: 6000, 1: 3800}, 2), ({2: 2191, 1: 3825}, 1)])
def test_a_decisive_probe_ends_after_two_steps_each(rates, expect):
    """A quiet machine's one thread, a busy one's stalling second thread: 30 % slower or
    more after two steps each, so the probe stops paying for the loser there."""
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=5, skip_steps=1, enabled=True, load=NO_READING)
    try:
        _feed(g, lambda t: 1 / rates[t], 1 + 4)
        assert g.choices == [(5, expect)] and g.threads == expect
    finally:
        g.close()


def test_a_close_probe_runs_every_step():
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=5, skip_steps=1, enabled=True, load=NO_READING)
    try:
        _feed(g, lambda t: {2: 1 / 6700, 1: 1 / 6450}[t], 1 + 9)
        assert g.choices == []
        _feed(g, lambda t: {2: 1 / 6700, 1: 1 / 6450}[t], 1)
        assert g.choices == [(11, 1)]
    finally:
        g.close()


def test_rechecks_that_confirm_the_choice_come_less_often_and_a_load_change_at_once():
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, recheck_every=20, enabled=True, load=NO_READING)
    quiet = lambda t: {2: 1 / 6000, 1: 1 / 3800}[t]  # noqa: E731
    try:
        _feed(g, quiet, 1 + 4)
        assert [c for _, c in g.choices] == [2]
        _feed(g, quiet, 20 + 4)  # a periodic re-check after 20 steps confirms 2 threads...
        _feed(g, quiet, 20 + 4)  # ... so the next comes after 40
        assert [s for s, _ in g.choices] == [5, 29]
        _feed(g, quiet, 20 + 4)
        assert [s for s, _ in g.choices] == [5, 29, 73]
        # load arrives: once the median of the last 6 steps is 30 % slower than the choice's
        # mean, a probe at once (not 80 steps later), decisive after 2 steps each
        start = g._steps
        _feed(g, lambda t: {2: 1 / 2000, 1: 1 / 3800}[t], 12)
        assert len(g.choices) == 4 and g.choices[-1][1] == 1 and g.choices[-1][0] - start <= 6 + 4
        # load goes away: one thread's steps get 30 % faster than when it was chosen: the same
        start = g._steps
        _feed(g, lambda t: {2: 1 / 6000, 1: 1 / 5400}[t], 12)
        assert len(g.choices) == 5 and g.choices[-1][1] == 2 and g.choices[-1][0] - start <= 6 + 4
    finally:
        g.close()


def test_governor_stands_aside_after_an_explicit_thread_count(monkeypatch):
    monkeypatch.delenv("VISUALCNN_ADAPTIVE_THREADS", raising=False)
    saved = parallel._threads_chosen[0], parallel._default_num_threads[0]
    try:
        parallel._threads_chosen[0] = False
        assert parallel.ThreadGovernor(max_threads=2).enabled
        monkeypatch.setenv("VISUALCNN_ADAPTIVE_THREADS", "0")
        assert not parallel.ThreadGovernor(max_threads=2).enabled
        monkeypatch.delenv("VISUALCNN_ADAPTIVE_THREADS")
        parallel.set_num_threads(1)
        g = parallel.ThreadGovernor()
        assert not g.enabled
        _feed(g, lambda t: 1e-4, 20)
        assert g.choices == [] and g.threads == 1
    finally:
        parallel._threads_chosen[0], parallel._default_num_threads[0] = saved
        parallel.numba.set_num_threads(saved[1])



def _tiny_cnn(seed):
    """A small CNN whose training step meets every reduction a CNN here has: few-channel
    conv and Winograd weight gradients (4x4 tiles on the 11x11 map, 2x2 on the 5x5 one),
    a Dense large enough to be split, dropout, Adam."""
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
                    L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
                    L.Conv2D(16, 3, padding="same", activation="relu"), L.Flatten(),
                    L.Dense(256, activation="relu"), L.Dropout(0.5), L.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.build(seed=seed)
    return m


def _train_with_threads(threads):
    rng = np.random.default_rng(7)
    x = rng.random((96, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    m = _tiny_cnn(seed=3)
    saved = parallel._threads_chosen[0], parallel._default_num_threads[0]
    try:
        parallel.set_num_threads(threads)
        for _ in train(m, x, y, batch_size=32, epochs=1, seed=5):
            pass
    finally:
        parallel._threads_chosen[0], parallel._default_num_threads[0] = saved
        parallel.numba.set_num_threads(saved[1])
    return m.get_weights()


@pytest.fixture
def four_by_four_tiles_on_small_maps(monkeypatch):
    """The tiny CNN's 11x11 map is below F(4x4, 3x3)'s work threshold; lower it, so its
    weight-gradient reduction is met too (plans are cached per shape: cleared around)."""
    from visualcnn.engine.kernels.conv import planner, winograd4

    monkeypatch.setattr(winograd4, "MIN_WORK_PER_IMAGE", 0)
    planner._plan.cache_clear()
    yield
    planner._plan.cache_clear()


def test_weights_are_bit_identical_whatever_the_live_thread_count(four_by_four_tiles_on_small_maps):
    # The ThreadGovernor changes the live thread count during a default run; every split
    # that changes rounding (partial sums, sgemm blocks) follows the work instead, so two
    # runs of one recipe give the same weights bit for bit.
    from visualcnn.engine import kernels

    if parallel.numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one numba worker: nothing to compare")
    if kernels.blas.available():  # the reductions the test means to cover are really met
        names = {layer.plan.kernel_strategy.name for layer in _tiny_cnn(seed=3).layers if hasattr(layer, "plan")}
        assert names == {"few_channel_3x3", "winograd", "winograd4"}
    one, two = _train_with_threads(1), _train_with_threads(2)
    start = _tiny_cnn(seed=3).get_weights()
    assert all(np.isfinite(w).all() for w in one)
    assert all(not np.array_equal(a, b) for a, b in zip(one, start)), "training left a weight unchanged"
    for i, (a, b) in enumerate(zip(one, two)):
        assert np.array_equal(a, b), f"weight {i} differs between 1 and 2 threads: max {np.abs(a - b).max()}"


def test_governor_counts_the_slow_steps_a_busy_machine_gives_more_threads():
    """Under load, most 2-thread steps are as fast as 1-thread ones but some wait a time
    slice for a descheduled worker: by the median 2 threads win, by the time they take
    (the mean) they lose, and the time is what the run pays."""
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=5, skip_steps=1, enabled=True, load=NO_READING)
    two = iter([5.9, 5.9, 12.0, 5.9, 5.9] * 2)
    try:
        _feed(g, lambda t: (next(two) if t == 2 else 6.25) / 1000 / 64, 11)
        assert g.choices and g.choices[-1][1] == 1 and g.threads == 1
    finally:
        g.close()


def test_a_busy_program_leaves_no_room_for_a_second_thread_so_none_is_probed():
    """One busy program on 2 cores: one thread from the first step, no two-thread probe
    steps (they are what the busy run paid); when it stops, two threads are measured and
    come back."""
    load = _Load(1.0)
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, recheck_every=20, enabled=True, load=load)
    ran = []
    try:
        assert g.threads == 1 and g.choices == [(0, 1)]
        for _ in range(100):
            ran.append(g.threads)
            g.step_done({2: 1 / 6400, 1: 1 / 6450}[g.threads] * 64, 64)
        assert set(ran) == {1} and [c for _, c in g.choices] == [1] * len(g.choices)
        load.others = 0.05  # quiet again
        _feed(g, lambda t: {2: 1 / 6000, 1: 1 / 3800}[t], 5)
        assert g.choices[-1][1] == 2 and g.threads == 2
    finally:
        g.close()


@pytest.mark.parametrize("others,fits", [(0.0, True), (0.45, True), (0.55, False), (1.0, False)])
def test_two_threads_fit_with_half_a_core_to_spare(others, fits):
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, enabled=True, load=_Load(others))
    try:
        assert (2 in g._fitting) is fits and g.threads == (2 if fits else 1)
    finally:
        g.close()


def test_a_reading_near_the_line_does_not_switch_back_and_forth():
    load = _Load(0.6)
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=3, skip_steps=1, enabled=True, load=load)
    try:
        assert g._fitting == (1,)
        load.others = 0.4  # would fit a fresh governor, not one that just saw no room
        _feed(g, lambda t: 1 / 5000, 3)
        assert g._fitting == (1,) and g.threads == 1
        load.others = 0.25
        _feed(g, lambda t: 1 / 5000, 1)
        assert g._fitting == (2, 1) and g.threads == 2  # measured again, from two threads
    finally:
        g.close()


def test_a_load_change_books_the_step_under_the_count_it_ran_on():
    load = _Load(1.0)
    g = parallel.ThreadGovernor(max_threads=2, probe_steps=5, skip_steps=1, enabled=True, load=load)
    quiet = lambda t: {2: 1 / 6000, 1: 1 / 3800}[t]  # noqa: E731
    try:
        _feed(g, quiet, 4)
        assert g.threads == 1
        load.others = 0.0  # seen after a one-thread step: that step is not the probe's
        _feed(g, quiet, 1)
        assert g._probe is not None and g.threads == 2 and all(v == [] for v in g._samples.values())
        _feed(g, quiet, 1)
        assert g._samples == {2: [1 / 6000], 1: []}
    finally:
        g.close()
