"""Graph models: call syntax, naming, the Model API, and forward / backward against a
float64 numpy reference (forks, merges, fused relus only where a producer has one consumer)."""

import numpy as np
import pytest

from visualcnn.engine import ConfigError, Input, KerasTensor, Model, Sequential, layers as L, model_from_graph
from visualcnn.engine.layers import relu_handoff


# --- call syntax and structure ---------------------------------------------------------

def test_input_is_a_symbolic_tensor_and_layers_call_on_it():
    inputs = Input(shape=(28, 28, 1))
    assert isinstance(inputs, KerasTensor) and inputs.shape == (None, 28, 28, 1)
    x = L.Conv2D(32, 3)(inputs)
    assert x.shape == (None, 26, 26, 32)
    y = L.Add()([x, L.Conv2D(32, 3, padding="same")(x)])
    assert y.shape == (None, 26, 26, 32) and y.layer.class_name == "Add"
    assert "shape=(None, 26, 26, 32)" in repr(y)


def test_call_errors_are_raised_at_the_call():
    inputs = Input(shape=(8, 8, 1))
    a, b = L.Conv2D(4, 3)(inputs), L.Conv2D(4, 1)(inputs)
    with pytest.raises(ConfigError, match="inputs must have the same shape"):
        L.Add()([a, b])
    with pytest.raises(ConfigError, match="use Add or Concatenate to join branches"):
        L.Dense(3)([a, b])
    with pytest.raises(ConfigError, match="a merge layer is called on a list of tensors"):
        L.Add()(a)
    with pytest.raises(TypeError, match="call it on a tensor from Input"):
        L.Dense(3)(np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="does not fit"):
        L.Conv2D(4, 9)(inputs)
    with pytest.raises(ConfigError, match="argument 'shape'"):
        Input(shape=(28, 0, 1))


def small_residual():
    inputs = Input(shape=(6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = L.Conv2D(4, 3, padding="same")(x)
    x = L.Add()([x, y])
    x = L.Flatten()(x)
    return inputs, L.Dense(3, activation="softmax")(x)


def test_model_naming_order_and_lookup():
    inputs, outputs = small_residual()
    model = Model(inputs, outputs)
    assert model.name == "functional" and model.input_name == "input_layer"
    assert [layer.name for layer in model.layers] == ["conv2d", "conv2d_1", "add", "flatten", "dense"]
    assert model.inbound == ((-1,), (0,), (0, 1), (2,), (3,))
    assert model.get_layer("add") is model.layers[2] and model.get_layer(index=-1) is model.layers[-1]
    with pytest.raises(ValueError, match="no layer named 'nope'; the layers are conv2d, conv2d_1"):
        model.get_layer("nope")
    assert model.output_shape == (None, 3) and model.input_shape == (6, 6, 2)


def test_keyword_form_names_and_keras_layer_order():
    inputs = Input(shape=(4,), name="pixels")
    a = L.Dense(3, name="a")(inputs)
    b = L.Dense(3, name="b")(L.Dense(5, name="deep")(inputs))
    model = Model(inputs=inputs, outputs=L.Concatenate(name="cat")([a, b]), name="two")
    assert model.name == "two" and model.input_name == "pixels"
    # Keras orders by depth from the output: the deeper branch first
    assert [layer.name for layer in model.layers] == ["deep", "a", "b", "cat"]
    assert model.inbound == ((-1,), (-1,), (0,), (1, 2))


def test_model_errors():
    inputs = Input(shape=(4,))
    other = Input(shape=(4,))
    with pytest.raises(ConfigError, match="exactly one input"):
        Model([inputs, other], L.Dense(2)(inputs))
    with pytest.raises(ConfigError, match="another Input"):
        Model(inputs, L.Add()([L.Dense(2)(inputs), L.Dense(2)(other)]))
    shared = L.Dense(4)
    with pytest.raises(ConfigError, match="is used twice"):
        Model(inputs, L.Add()([shared(inputs), shared(inputs)]))
    with pytest.raises(ConfigError, match="at least one layer"):
        Model(inputs, inputs)
    with pytest.raises(ConfigError, match="Model needs inputs and outputs"):
        Model()
    a = L.Dense(2, name="same")(inputs)
    with pytest.raises(ConfigError, match="the name 'same' is already used"):
        Model(inputs, L.Dense(2, name="same")(a))


def test_sequential_is_the_linear_case_and_accepts_the_input_tensor():
    model = Sequential([Input(shape=(28, 28, 1), name="img"), L.Conv2D(4, 3), L.Flatten(), L.Dense(10)])
    assert isinstance(model, Model) and model.input_shape == (28, 28, 1) and model.input_name == "img"
    assert model.inbound == ((-1,), (0,), (1,))
    assert model.analyse().is_linear
    again = Sequential([L.InputLayer(shape=(5,)), L.Dense(2)])
    assert again.input_shape == (5,) and again.input_name == "input_layer"


def test_model_from_graph():
    layers = [L.Dense(4), L.Dense(4), L.Add(), L.Dense(2)]
    model = model_from_graph("g", (3,), layers, ((-1,), (0,), (0, 1), (2,)), input_name="x")
    assert type(model) is Model and model.input_name == "x"
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "add", "dense_2"]
    linear = model_from_graph("s", (3,), [L.Dense(4), L.Dense(2)], ((-1,), (0,)), sequential=True)
    assert type(linear) is Sequential and linear.name == "s"
    functional = model_from_graph("f", (3,), [L.Dense(4), L.Dense(2)], ((-1,), (0,)))
    assert type(functional) is Model
    broken = model_from_graph("b", (3,), [L.Dense(4), L.Dense(5), L.Add()], ((-1,), (-1,), (0, 1)))
    assert "inputs must have the same shape" in broken.analyse().error
    with pytest.raises(ConfigError, match="inputs must have the same shape"):
        broken.build()


# --- numerics: a float64 numpy reference --------------------------------------------------

def mlp_graph():
    """input -> d0 (relu via a separate Activation, but d0 also feeds the Add: no fusion)
    -> [Activation relu, Dense d1] -> Add(d0, relu) -> Concatenate(add, d1) -> Multiply(...)
    -> Dense softmax. The input feeds two layers."""
    inputs = Input(shape=(5,))
    d0 = L.Dense(4, name="d0")(inputs)
    r = L.Activation("relu", name="r")(d0)
    s = L.Add(name="s")([d0, r])
    d1 = L.Dense(4, activation="tanh", name="d1")(inputs)
    c = L.Concatenate(name="c")([s, d1])
    m = L.Multiply(name="m")([c, L.Dense(8, name="gate", activation="sigmoid")(d1)])
    mx = L.Maximum(name="mx")([m, L.Dense(8, name="alt")(c)])
    return Model(inputs, L.Dense(3, activation="softmax", name="out")(mx))


def reference(model, x, y):
    """Loss, probabilities, weight gradients and input gradient in float64."""
    W = {f"{layer.name}/{spec.name}": w.astype(np.float64)
         for layer in model.layers for spec, w in zip(layer.weight_specs, layer.weights)}
    x = x.astype(np.float64)
    d0 = x @ W["d0/kernel"] + W["d0/bias"]
    r = np.maximum(d0, 0)
    s = d0 + r
    z1 = x @ W["d1/kernel"] + W["d1/bias"]
    d1 = np.tanh(z1)
    c = np.concatenate([s, d1], axis=1)
    zg = d1 @ W["gate/kernel"] + W["gate/bias"]
    g = 1 / (1 + np.exp(-zg))
    m = c * g
    alt = c @ W["alt/kernel"] + W["alt/bias"]
    mx = np.maximum(m, alt)
    logits = mx @ W["out/kernel"] + W["out/bias"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n = x.shape[0]
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dlog = p.copy()
    dlog[np.arange(n), y] -= 1
    dlog /= n
    G = {"out/kernel": mx.T @ dlog, "out/bias": dlog.sum(0)}
    dmx = dlog @ W["out/kernel"].T
    dm, dalt = dmx * (m >= alt), dmx * (m < alt)
    G["alt/kernel"], G["alt/bias"] = c.T @ dalt, dalt.sum(0)
    dc = dalt @ W["alt/kernel"].T + dm * g
    dg = dm * c
    dzg = dg * g * (1 - g)
    G["gate/kernel"], G["gate/bias"] = d1.T @ dzg, dzg.sum(0)
    dd1 = dc[:, 4:] + dzg @ W["gate/kernel"].T
    ds = dc[:, :4]
    dz1 = dd1 * (1 - d1 ** 2)
    G["d1/kernel"], G["d1/bias"] = x.T @ dz1, dz1.sum(0)
    dd0 = ds + ds * (d0 > 0)
    G["d0/kernel"], G["d0/bias"] = x.T @ dd0, dd0.sum(0)
    dx = dd0 @ W["d0/kernel"].T + dz1 @ W["d1/kernel"].T
    return loss, p, G, dx


@pytest.fixture()
def built_mlp():
    model = mlp_graph()
    model.build(seed=3)
    rng = np.random.default_rng(3)
    model.set_weights([w + rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    x = rng.normal(size=(7, 5)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    return model, x, y


def test_forward_and_every_gradient_match_the_numpy_reference(built_mlp):
    model, x, y = built_mlp
    loss, p, G, dx = reference(model, x, y)
    np.testing.assert_allclose(model.predict(x), p, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, batch_size=2), p, atol=1e-5)
    np.testing.assert_allclose(model.predict(x[:1], batch_size=1), p[:1], atol=1e-5)
    got_loss, grads = model.compute_gradients(x, y)
    assert abs(got_loss - loss) < 1e-5
    names = [f"{layer.name}/{spec.name}" for layer in model.layers for spec in layer.weight_specs]
    assert len(grads) == len(names) == len(G)
    for name, g in zip(names, grads):
        np.testing.assert_allclose(g, G[name], atol=1e-5, err_msg=name)
    ctxs = model._train_ctxs
    out = model._forward(x, ctxs, training=True)
    _, dloss, fused = model._loss_and_grad(out, y, ctxs)
    np.testing.assert_allclose(model._backward(dloss, ctxs, fused, need_input_grad=True), dx, atol=1e-5)


def test_input_gradients_of_a_forking_input(built_mlp):
    model, x, _ = built_mlp
    eps = 1e-3
    got = model.input_gradients(x[:1], 2)
    # the score of class 2 is its logit; the reference gives probabilities, whose log is
    # the logit up to a shift shared by all classes

    def logit(v):
        p = reference(model, v[None], np.zeros(1, int))[1][0]
        return np.log(p[2]) - np.log(p).mean()  # softmax is shift-invariant: log p + const

    numeric = np.array([(logit(x[0] + eps * e) - logit(x[0] - eps * e)) / (2 * eps) for e in np.eye(5)])
    # log p_2 - mean(log p) = logit_2 - mean(logits): subtract the mean logit's gradient
    mean_grad = np.mean([model.input_gradients(x[:1], k)[0] for k in range(3)], axis=0)
    np.testing.assert_allclose(got[0] - mean_grad, numeric, atol=1e-3)


def test_training_changes_weights_and_matches_the_reference_step(built_mlp):
    model, x, y = built_mlp
    _, _, G, _ = reference(model, x, y)
    before = {f"{layer.name}/{spec.name}": w.copy()
              for layer in model.layers for spec, w in zip(layer.weight_specs, layer.weights)}
    model.train_on_batch(x, y)
    lr = model.optimizer.learning_rate
    for layer in model.layers:
        for spec, w in zip(layer.weight_specs, layer.weights):
            key = f"{layer.name}/{spec.name}"
            np.testing.assert_allclose(w, before[key] - lr * G[key], atol=1e-6, err_msg=key)


def test_fit_evaluate_and_history_on_a_graph(built_mlp):
    model, x, y = built_mlp
    xs = np.repeat(x, 20, axis=0)
    ys = np.repeat(y, 20)
    history = model.fit(xs, ys, epochs=3, batch_size=16, verbose=0, validation_split=0.2)
    assert len(history.history["loss"]) == 3 and "val_accuracy" in history.history
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(xs, ys, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_activations_returns_every_node_unfused(built_mlp):
    model, x, y = built_mlp
    acts = model.activations(x)
    assert list(acts) == [layer.name for layer in model.layers]
    W = {f"{layer.name}/{spec.name}": w for layer in model.layers for spec, w in zip(layer.weight_specs, layer.weights)}
    d0 = x @ W["d0/kernel"] + W["d0/bias"]
    np.testing.assert_allclose(acts["d0"], d0, atol=1e-5)  # not relu'd: d0 also feeds the Add
    np.testing.assert_allclose(acts["r"], np.maximum(d0, 0), atol=1e-5)
    np.testing.assert_allclose(acts["s"], d0 + np.maximum(d0, 0), atol=1e-5)


def test_get_and_set_weights_in_layer_order(built_mlp):
    model, _, _ = built_mlp
    weights = model.get_weights()
    assert [w.shape for w in weights] == [w.shape for layer in model.layers for w in layer.weights]
    model.set_weights([np.zeros_like(w) for w in weights])
    assert all(not w.any() for w in model.weights)
    with pytest.raises(ValueError, match="the model has 10 weight arrays, received 1"):
        model.set_weights(weights[:1])


# --- the optimisations only where a producer has one consumer ------------------------------

def conv_fork_model():
    """A conv whose output feeds a relu AND a BatchNormalization AND a MaxPooling2D: no
    fusion, folding or relu hand-off may change what the other consumers see."""
    inputs = Input(shape=(8, 8, 2))
    c = L.Conv2D(4, 3, padding="same", name="c")(inputs)
    r = L.Activation("relu", name="r")(c)
    b = L.BatchNormalization(name="bn")(c)
    p = L.MaxPooling2D(2, name="pool")(L.Conv2D(4, 3, padding="same", activation="relu", name="cr")(inputs))
    s = L.Add(name="s")([r, b])
    s = L.MaxPooling2D(2, name="p2")(s)
    s = L.Concatenate(name="cat")([s, p])
    return Model(inputs, L.Dense(3, activation="softmax", name="out")(L.Flatten(name="flat")(s)))


def test_forked_producers_are_not_fused_at_inference():
    model = conv_fork_model()
    model.build(seed=1)
    rng = np.random.default_rng(1)
    weights = [w + rng.normal(0, 0.2, w.shape).astype(np.float32) for w in model.get_weights()]
    specs = [s.name for layer in model.layers for s in layer.weight_specs]
    model.set_weights([np.abs(w) if n == "moving_variance" else w for n, w in zip(specs, weights)])
    x = rng.normal(size=(5, 8, 8, 2)).astype(np.float32)
    acts = model.activations(x)  # nothing fused there
    np.testing.assert_allclose(model.predict(x, batch_size=5), acts["out"], atol=1e-5)
    np.testing.assert_allclose(model.predict(x[:1], batch_size=1), acts["out"][:1], atol=1e-5)


def test_forked_producers_train_like_the_unoptimised_passes():
    model = conv_fork_model()
    model.build(seed=2)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    _, grads = model.compute_gradients(x, y)
    relu_handoff.ENABLED = False
    try:
        _, plain = model.compute_gradients(x, y)
    finally:
        relu_handoff.ENABLED = True
    for g, p in zip(grads, plain):
        np.testing.assert_allclose(g, p, atol=1e-6)
    # and against central differences of the loss for a few kernel entries of the forked conv
    kernel = model.get_layer("c").weights[0]
    at = [f"{layer.name}/{spec.name}" for layer in model.layers for spec in layer.weight_specs
          if spec.trainable].index("c/kernel")
    eps = 1e-3  # small: max pooling and relu have kinks (PyTorch agrees: test_graph_torch)
    for idx in [(0, 0, 0, 0), (1, 2, 1, 3), (2, 1, 0, 2)]:
        old = kernel[idx]
        kernel[idx] = old + eps
        up = model.compute_gradients(x, y)[0]
        kernel[idx] = old - eps
        down = model.compute_gradients(x, y)[0]
        kernel[idx] = old
        assert abs((up - down) / (2 * eps) - grads[at][idx]) < 2e-3


def test_streaming_inference_reuses_arenas_by_liveness():
    inputs = Input(shape=(16, 16, 4))
    x = inputs
    for _ in range(4):
        y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
        y = L.Conv2D(4, 3, padding="same")(y)
        x = L.Activation("relu")(L.Add()([x, y]))
    model = Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    model.build()
    x = np.random.default_rng(0).random((200, 16, 16, 4), dtype=np.float32)
    want = model.activations(x[:50])[model.layers[-1].name]
    got = model.predict(x, batch_size=200)
    np.testing.assert_allclose(got[:50], want, atol=1e-5)
    arenas = model._local.arenas
    assert len(arenas) <= 4  # 13 layers, but only a few feature maps alive at once
    biggest = 200 * 16 * 16 * 4 * 4
    assert sum(ws.nbytes() for ws in arenas) < 8 * biggest


def test_add_takes_over_the_relu_after_it_only_when_it_is_its_only_consumer():
    inputs = Input(shape=(6, 6, 2))
    a = L.Conv2D(2, 3, padding="same", name="a")(inputs)
    s = L.Add(name="s")([inputs, a])
    r = L.Activation("relu", name="r")(s)
    t = L.Add(name="t")([r, a])
    u = L.Activation("relu", name="u")(t)
    v = L.Add(name="v")([u, t])  # t feeds u and v: not fused
    model = Model(inputs, L.Dense(2, name="out")(L.Flatten(name="f")(v)))
    model.build()
    model.compile("sgd", "mean_squared_error")
    x = np.random.default_rng(0).normal(size=(3, 6, 6, 2)).astype(np.float32)
    model.compute_gradients(x, np.zeros((3, 2), np.float32))
    ctx = {layer.name: c for layer, c in zip(model.layers, model._train_ctxs)}
    assert ctx["s"].saved["relu"] and ctx["r"].saved["passthrough"]
    assert not ctx["t"].saved["relu"] and not ctx["u"].saved["passthrough"]
    acts = model.activations(x)
    np.testing.assert_allclose(acts["t"], np.maximum(acts["s"], 0) + acts["a"], atol=1e-5)
    np.testing.assert_allclose(model.predict(x), acts["out"], atol=1e-5)


def test_the_engine_services_work_on_graphs():
    """The training generator, the recipe's readiness check, the memory estimate, the
    benchmark's copy and the warm-up's dry run take graph models as they take Sequential."""
    from visualcnn.engine import benchmark, memory, recipe, training, warmup
    from visualcnn.engine.training_config import TrainingConfig

    inputs = Input(shape=(28, 28, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = L.Activation("relu")(L.Add()([x, L.Conv2D(4, 3, padding="same")(x)]))
    x = L.Concatenate()([L.MaxPooling2D()(x), L.AveragePooling2D(2)(x)])
    model = Model(inputs, L.Dense(10, activation="softmax")(L.Flatten()(x)))
    assert recipe.readiness_problem(model.analyse(), TrainingConfig()) is None
    copy = benchmark.clone_for_benchmark(model)
    assert type(copy) is Model and copy.inbound == model.inbound and copy is not model
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    assert all(a is not b for a, b in zip(copy.layers, model.layers))
    assert isinstance(warmup.kernels_needed(model, batch_size=8), list)  # compiled ones are not listed:
    # test_graph_warmup.py checks the list in a fresh interpreter
    estimate = memory.estimate_memory(model.analyse(), 32)
    plain = memory.estimate_memory(model.analyse(), 1)
    assert estimate.training_peak_bytes > plain.training_peak_bytes > 0
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    run = training.train(model, rng.random((40, 28, 28, 1), dtype=np.float32), np.arange(40) % 10, batch_size=16)
    kinds = [type(report).__name__ for report in run]
    assert kinds == ["StepReport"] * 3 + ["EpochReport"]
    costs = benchmark.layer_costs(model, batch_size=8, steps=1, warmup=1)
    assert [c.name for c in costs] == [layer.name for layer in model.layers]


def test_save_and_load_a_graph_model(tmp_path):
    from visualcnn.engine import load_model

    inputs, outputs = small_residual()
    model = Model(inputs, outputs, name="res")
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.build(seed=4)
    path = tmp_path / "res.json"
    model.save(path)
    again = load_model(path)
    assert type(again) is Model and again.inbound == model.inbound and again.name == "res"
    x = np.random.default_rng(4).random((3, 6, 6, 2), dtype=np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_predict_a_graph_from_the_main_thread_while_it_trains():
    from visualcnn.engine import parallel
    from visualcnn.engine.training import run_in_thread, train

    inputs = Input(shape=(12, 12, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = L.Activation("relu")(L.Add()([x, L.Conv2D(8, 3, padding="same")(x)]))
    x = L.Concatenate()([L.MaxPooling2D()(x), L.AveragePooling2D(2)(x)])
    model = Model(inputs, L.Dense(10, activation="softmax")(L.Flatten()(x)))
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((512, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 10, 512)
    model.predict(x[:1])
    worker = run_in_thread(train(model, x, y, batch_size=16, epochs=2))
    calls = 0
    while worker.is_alive() or calls < 3:
        p = model.predict(x[:1])  # serial kernels: another thread trains this model
        assert p.shape == (1, 10) and np.isfinite(p).all()
        assert set(model.activations(x[:1])) == {layer.name for layer in model.layers}
        assert np.isfinite(model.input_gradients(x[:1], 3)).all()
        if parallel.PARALLEL_IS_THREADSAFE:
            model.predict(x[:8], serial=False)
        calls += 1
    worker.join()
    assert model._training_thread is None and calls >= 3


def test_input_gradients_when_a_merge_reads_the_input():
    inputs = Input(shape=(4,))
    h = L.Dense(4, activation="tanh", name="h")(inputs)
    s = L.Add(name="s")([inputs, h, inputs])  # the input twice, and through h
    model = Model(inputs, L.Dense(2, name="out")(s))
    model.build(seed=5)
    W = {f"{layer.name}/{spec.name}": w.astype(np.float64)
         for layer in model.layers for spec, w in zip(layer.weight_specs, layer.weights)}
    x = np.random.default_rng(5).normal(size=(1, 4)).astype(np.float32)
    # out_1 = (2x + tanh(x Wh + bh)) Wo[:, 1] + bo[1]
    z = x[0].astype(np.float64) @ W["h/kernel"] + W["h/bias"]
    want = 2 * W["out/kernel"][:, 1] + W["h/kernel"] @ ((1 - np.tanh(z) ** 2) * W["out/kernel"][:, 1])
    np.testing.assert_allclose(model.input_gradients(x, 1)[0], want, atol=1e-5)


def test_a_chain_holding_a_one_input_merge_runs():
    # the builder can hold an Add with one input (dropped on a link, its second input not yet drawn)
    model = Sequential([Input(shape=(3,)), L.Dense(4, name="d"), L.Add(name="a"), L.Dense(2, name="o")])
    model.build()
    model.compile("sgd", "mean_squared_error")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    acts = model.activations(x)
    np.testing.assert_allclose(acts["a"], acts["d"])
    np.testing.assert_allclose(model.predict(x), acts["o"], atol=1e-6)
    loss, grads = model.compute_gradients(x, np.zeros((5, 2), np.float32))
    assert np.isfinite(loss) and len(grads) == 4


def test_a_call_error_names_unnamed_inputs_by_position():
    inputs = Input(shape=(8, 8, 1))
    with pytest.raises(ConfigError, match=r"^Add 'join': inputs must have the same shape: 'input 1' gives "
                                          r"\(None, 6, 6, 4\) but 'wide' gives \(None, 8, 8, 4\)"):
        L.Add(name="join")([L.Conv2D(4, 3)(inputs), L.Conv2D(4, 1, name="wide")(inputs)])


def test_a_graphs_first_conv_runs_the_pool_after_it_bit_for_bit(monkeypatch):
    """Input -> Conv2D(relu) -> MaxPooling2D -> two branches (the Inception stem): the conv
    runs the pool's forward and backward inside its own (graph_run.pooled_convs), with
    the same gradients, bit for bit, as the passes one by one; a conv whose input needs
    a gradient (the branches') does not."""
    from visualcnn.engine import graph_run

    inputs = Input(shape=(12, 12, 1))
    s = L.MaxPooling2D(name="pool")(L.Conv2D(6, 3, activation="relu", name="stem")(inputs))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(s)
    b = L.MaxPooling2D(name="b_pool")(L.Conv2D(4, 1, activation="relu", name="b")(s))
    out = L.Dense(3, activation="softmax", name="out")(
        L.Flatten()(L.Concatenate()([L.MaxPooling2D()(a), b])))
    model = Model(inputs, out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.build(seed=2)
    assert model._plan.pooled == {model.layers.index(model.get_layer("stem")): model.layers.index(
        model.get_layer("pool"))}
    calls = []
    for name in ("forward_into_pool", "backward_from_pool"):
        original = getattr(L.Conv2D, name)
        monkeypatch.setattr(L.Conv2D, name, lambda self, *a, _o=original, _n=name: (
            calls.append((self.name, _n)), _o(self, *a))[1])
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    loss, grads = model.compute_gradients(x, y)
    assert calls == [("stem", "forward_into_pool"), ("stem", "backward_from_pool")]
    monkeypatch.setattr(graph_run, "takes_pool", lambda conv, pool: False)
    plain_loss, plain = model.compute_gradients(x, y)
    assert len(calls) == 2 and loss == plain_loss
    for g, p in zip(grads, plain):
        assert np.array_equal(g, p)
    # the per-layer times say where the pool's passes went
    from visualcnn.engine import benchmark

    monkeypatch.undo()
    costs = {c.name: c for c in benchmark.layer_costs(model, batch_size=4, steps=1, warmup=1)}
    assert costs["pool"].forward_in == costs["pool"].backward_in == "stem"
    assert costs["b_pool"].forward_in == costs["b_pool"].backward_in == ""
