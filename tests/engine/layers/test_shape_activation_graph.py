"""All eleven shape and activation layers in one Functional graph with a fork: trains, and
(live, when installed) equals real Keras on torch autograd, forward and every gradient."""

import numpy as np
import pytest
from layer_checks import live_keras

from visualcnn.engine import Input, Model, layers as L


def _network(layers, make_input, make_model):
    """The same graph from either library: a conv feeding two activation branches that
    are added, then every shape layer on the way to a Dense and a Softmax layer."""
    inputs = make_input((6, 6, 2))
    x = layers.Rescaling(0.5, offset=-0.1, name="rescale")(inputs)
    x = layers.Conv2D(4, 3, padding="same", name="conv_a")(x)
    a = layers.ReLU(max_value=1.5, name="relu")(x)
    a = layers.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(a)
    a = layers.Cropping2D(((1, 0), (2, 1)), name="crop")(a)
    b = layers.LeakyReLU(0.1, name="leaky")(x)
    b = layers.ELU(0.7, name="elu")(b)
    x = layers.Add(name="add")([a, b])
    x = layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="up")(x)
    x = layers.Permute((2, 1, 3), name="permute")(x)
    x = layers.Conv2D(3, 3, strides=2, name="conv_b")(x)
    x = layers.Reshape((-1, 3), name="reshape")(x)
    x = layers.Softmax(axis=1, name="softmax_positions")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(3, name="dense")(x)
    return make_model(inputs, layers.Softmax(name="softmax")(x))


def _ours():
    return _network(L, lambda shape: Input(shape), lambda i, o: Model(i, o))


def _data(n=5):
    rng = np.random.default_rng(0)
    return rng.uniform(-2, 4, (n, 6, 6, 2)).astype(np.float32), rng.random((n, 3)).astype(np.float32)


def test_trains_and_shapes():
    model = _ours()
    model.compile(optimizer="adam", loss="mse")
    x, y = _data(16)
    report = model.analyse()
    assert report.error is None
    shapes = {row.name: row.output_shape for row in report.rows}
    assert shapes["pad"] == (None, 7, 9, 4) and shapes["up"] == (None, 12, 12, 4)
    assert shapes["reshape"] == (None, 25, 3) and shapes["softmax"] == (None, 3)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1.0, rtol=1e-5)


def test_live_keras_forward_and_every_gradient():
    keras = live_keras()
    torch = pytest.importorskip("torch")
    ours = _ours()
    ours.compile(optimizer="sgd", loss="mse")
    ours.build(seed=3)
    for layer in ours.layers:  # PReLU's alpha starts at zero in both: make it matter
        if layer.class_name == "PReLU":
            layer.weights[0][...] = np.array([0.1, 0.25, 0.4, 0.6], np.float32)
    theirs = _network(keras.layers, keras.Input, keras.Model)
    for layer in ours.layers:
        if layer.weights:
            theirs.get_layer(layer.name).set_weights([w.copy() for w in layer.weights])
    x, y = _data()
    np.testing.assert_allclose(ours.predict(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)

    loss, grads = ours.compute_gradients(x, y)
    out = theirs(torch.tensor(x))
    keras_loss = ((out - torch.tensor(y)) ** 2).mean()
    keras_loss.backward()
    assert loss == pytest.approx(float(keras_loss), rel=1e-5)
    keras_grads = {v.path: v.value.grad.numpy() for v in theirs.trainable_variables}
    names = [f"{ours.layers[i].name}/{spec.name}" for i, spec, _ in ours._trainable_pairs()]
    assert sorted(names) == sorted(keras_grads)
    for name, g in zip(names, grads):
        np.testing.assert_allclose(g, keras_grads[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_live_keras_json_reads_back_with_keras_summary():
    import contextlib
    import io

    from visualcnn.engine import read_model_file, render_summary

    keras = live_keras()
    theirs = _network(keras.layers, keras.Input, keras.Model)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        theirs.summary(line_length=76)
    ours = read_model_file(theirs.to_json()).model
    report = ours.analyse()
    assert report.error is None
    assert render_summary(ours.name, report, 76) == printed.getvalue().rstrip("\n")


def test_saved_and_loaded_with_weights(tmp_path):
    from visualcnn.engine import load_model

    model = _ours()
    model.build(seed=4)
    for layer in model.layers:
        if layer.class_name == "PReLU":
            layer.weights[0][...] = 0.3
    path = tmp_path / "all_eleven.keras"
    model.save(str(path))
    again = load_model(str(path))
    assert [layer.get_config() for layer in again.layers] == [layer.get_config() for layer in model.layers]
    x, _ = _data()
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
