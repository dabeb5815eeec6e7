"""The warm-up's dry run covers a graph model: after warm_up, a whole session (fit,
predict, single-image and serial predict, feature maps, saliency) compiles nothing more.
Runs in a fresh interpreter, as tests/engine/test_warmup.py does."""

import json
import subprocess
import sys
import textwrap

CODE = textwrap.dedent("""
    import json
    import numpy as np
    from numba.core.dispatcher import Dispatcher
    from visualcnn.engine import Input, Model, layers as L, warmup

    inputs = Input(shape=(12, 12, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(x))
    x = L.Activation("relu")(L.Add()([x, y]))
    x = L.Concatenate()([L.MaxPooling2D()(x), L.AveragePooling2D(2)(x)])
    x = L.Maximum()([x, L.Multiply()([x, x])])
    m = Model(inputs, L.Dense(10, activation="softmax")(L.Flatten()(x)))
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    events = []
    warmup.warm_up(m, progress=lambda done, total: events.append((done, total)))
    names = [u.name for u in warmup.kernels_needed(m)]

    original = Dispatcher._compile_for_args
    late = []
    def spy(self, *args, **kws):
        late.append(self.__name__)
        return original(self, *args, **kws)
    Dispatcher._compile_for_args = spy
    rng = np.random.default_rng(0)
    x = rng.random((64, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    m.fit(x, y, batch_size=64, epochs=1, verbose=0)
    m.predict(x, batch_size=64)
    m.predict(x[:1])
    m.predict(x[:1], serial=True)
    m.activations(x[:1])
    m.input_gradients(x[:1], 3)
    print(json.dumps({"total": events[0][1], "left": names, "late": late}))
""")


def test_warm_up_covers_a_graph_session():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["total"] >= 5
    assert out["left"] == []
    assert out["late"] == [], f"compiled after warm-up: {out['late']}"
