"""Regenerate keras_models.json.gz from REAL Keras 3 (not needed to run the tests).

    pip install keras torch==2.13.0
    KERAS_BACKEND=torch python tests/engine/keras_fixtures/make_fixtures.py [N]

Builds N random Sequential models from the layers VisualCNN supports. For each model Keras
accepts, stores its model.to_json(), every layer's output shape and parameter counts, and
the text of model.summary(). For configurations Keras refuses, stores the JSON we would
write and the fact that it is invalid. The tests read the file; Keras is not needed there.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import sys
from contextlib import redirect_stdout
from pathlib import Path

import keras
from keras import layers

ACTS = ["relu", "linear", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", None]


def pair(rng, lo, hi):
    return rng.randint(lo, hi) if rng.random() < 0.5 else (rng.randint(lo, hi), rng.randint(lo, hi))


def conv_kwargs(rng, transpose=False):
    kw = {"kernel_size": pair(rng, 1, 5), "padding": rng.choice(["valid", "same"])}
    if rng.random() < 0.3:
        kw["dilation_rate"] = pair(rng, 1, 3)
    elif rng.random() < 0.5:
        kw["strides"] = pair(rng, 1, 3)
    if rng.random() < 0.5:
        kw["activation"] = rng.choice(ACTS)
    if rng.random() < 0.2:
        kw["use_bias"] = False
    return kw


def image_layer(rng):
    kind = rng.choice(["conv", "conv", "conv", "depthwise", "separable", "transpose", "max", "avg", "bn", "act", "drop"])
    if kind == "conv":
        return layers.Conv2D(rng.choice([1, 2, 4, 8, 16]), **conv_kwargs(rng))
    if kind == "depthwise":
        return layers.DepthwiseConv2D(depth_multiplier=rng.randint(1, 3), **conv_kwargs(rng))
    if kind == "separable":
        return layers.SeparableConv2D(rng.choice([2, 4, 8]), depth_multiplier=rng.randint(1, 2), **conv_kwargs(rng))
    if kind == "transpose":
        kw = conv_kwargs(rng, transpose=True)
        if rng.random() < 0.3:
            kw["strides"], kw["output_padding"], kw["dilation_rate"] = 2, rng.randint(0, 1), 1
        return layers.Conv2DTranspose(rng.choice([2, 4]), **kw)
    if kind in ("max", "avg"):
        kw = {"pool_size": pair(rng, 1, 3), "padding": rng.choice(["valid", "same"])}
        if rng.random() < 0.4:
            kw["strides"] = pair(rng, 1, 3)
        return layers.MaxPooling2D(**kw) if kind == "max" else layers.AveragePooling2D(**kw)
    if kind == "bn":
        return layers.BatchNormalization(center=rng.random() < 0.8, scale=rng.random() < 0.8)
    if kind == "act":
        return layers.Activation(rng.choice([a for a in ACTS if a]))
    return layers.Dropout(rng.choice([0.1, 0.25, 0.5]))


def random_model(rng, index):
    h, w = rng.randint(4, 40), rng.randint(4, 40)
    stack = [keras.Input(shape=(h, w, rng.choice([1, 3])))]
    for _ in range(rng.randint(1, 5)):
        stack.append(image_layer(rng))
    tail = rng.choice(["flatten", "gap", "gmp", "dense_on_map", "none"])
    if tail == "flatten":
        stack.append(layers.Flatten())
    elif tail == "gap":
        stack.append(layers.GlobalAveragePooling2D(keepdims=rng.random() < 0.2))
    elif tail == "gmp":
        stack.append(layers.GlobalMaxPooling2D())
    if tail != "none":
        for _ in range(rng.randint(0, 2)):
            stack.append(layers.Dense(rng.choice([3, 10, 32]), activation=rng.choice(ACTS)))
            if rng.random() < 0.3:
                stack.append(layers.Dropout(0.5) if rng.random() < 0.5 else layers.BatchNormalization())
    for layer in stack[1:]:
        if rng.random() < 0.05:
            layer.trainable = False
    return stack


def main(n: int) -> None:
    rng = random.Random(1234)
    cases = []
    for index in range(n):
        stack = random_model(rng, index)
        try:
            model = keras.Sequential(stack, name=f"model_{index}")
        except ValueError as exc:
            cases.append({"valid": False, "layers": [_describe(layer) for layer in stack[1:]],
                          "input_shape": list(stack[0].shape[1:]), "keras_error": str(exc).splitlines()[0]})
            continue
        rows = []
        for layer in model.layers:
            rows.append({"name": layer.name, "class_name": layer.__class__.__name__,
                         "output_shape": list(layer.output.shape), "params": layer.count_params(),
                         "trainable_params": sum(int(v.numpy().size) for v in layer.trainable_weights)})
        case = {"valid": True, "json": model.to_json(), "rows": rows}
        if index % 5 == 0:  # the table text for a sample keeps the file small
            text = io.StringIO()
            with redirect_stdout(text):
                model.summary(line_length=76)
            case["summary"] = text.getvalue()
        cases.append(case)
    out = Path(__file__).with_name("keras_models.json.gz")
    payload = json.dumps({"keras_version": keras.__version__, "cases": cases}, separators=(",", ":"))
    out.write_bytes(gzip.compress(payload.encode(), mtime=0))
    print(f"{sum(c['valid'] for c in cases)} valid, {sum(not c['valid'] for c in cases)} refused -> {out}")


def _describe(layer) -> dict:
    config = layer.get_config()
    config.pop("dtype", None)
    return {"class_name": layer.__class__.__name__, "config": json.loads(json.dumps(config, default=list))}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
