"""Random Keras 3 Functional models for the cross-checks (needs real Keras; not imported in CI).

`random_model(keras, rng, index, classes)` builds one keras.Model from a random.Random:
residual blocks (a shape-keeping branch merged back with Add, Subtract, Multiply, Average,
Maximum or Minimum, a 1x1 projection when the channels differ), Inception-like blocks
(parallel branches joined by Concatenate), plain chains, long layer names, frozen layers,
and a vector head (Flatten or global pooling, Dense, sometimes two Dense branches merged).
It draws only from `classes`: the layer classes VisualCNN registers that Keras also has,
so a class added to VisualCNN is covered by the next run. A layer Keras refuses for the
shape at hand is skipped (Keras decides what a valid model is; VisualCNN must agree).
`case(keras, model, line_lengths)` records what the tests compare: to_json(), each layer's
output shape and parameter counts, and summary() text at a few widths.
"""

from __future__ import annotations

import io
import json

# The activations VisualCNN has (Keras also has mish, swish, ...: not part of this check).
ACTS = ["relu", "linear", "sigmoid", "tanh", "softmax", "leaky_relu", "elu", "selu", "softplus", "gelu",
        "hard_sigmoid", "relu6", "silu", "exponential", "softsign", "log_softmax"]
MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def _pair(rng, lo, hi):
    return rng.randint(lo, hi) if rng.random() < 0.6 else (rng.randint(lo, hi), rng.randint(lo, hi))


def _act(rng):
    return rng.choice(ACTS)


def image_layer(L, rng, cls, shape, keep=False):
    """A layer of class `cls` for a (None, h, w, c) input, or None when the class cannot take it.
    keep: the output must have the input's shape (a residual branch)."""
    _, h, w, c = shape
    pad = "same" if keep else rng.choice(["same", "valid"])
    conv = {"kernel_size": _pair(rng, 1, 3 if keep else 4), "padding": pad}
    if not keep and rng.random() < 0.25:
        conv["strides"] = _pair(rng, 1, 2)
    elif rng.random() < 0.15:
        conv["dilation_rate"] = _pair(rng, 1, 2)
    if rng.random() < 0.5:
        conv["activation"] = _act(rng)
    if rng.random() < 0.15:
        conv["use_bias"] = False
    if cls == "Conv2D":
        return L.Conv2D(c if keep else rng.choice([2, 4, 6, 8]), **conv)
    if cls == "DepthwiseConv2D":
        return L.DepthwiseConv2D(depth_multiplier=1 if keep else rng.randint(1, 2), **conv)
    if cls == "SeparableConv2D":
        return L.SeparableConv2D(c if keep else rng.choice([2, 4, 8]), depth_multiplier=rng.randint(1, 2), **conv)
    if cls == "Conv2DTranspose":
        conv.pop("dilation_rate", None)
        if keep:
            conv.pop("strides", None)
        elif rng.random() < 0.3:
            conv["strides"], conv["output_padding"] = 2, rng.randint(0, 1)
        elif rng.random() < 0.2:
            conv["strides"], conv["output_padding"] = (2, 3), (1, rng.randint(0, 2))
        return L.Conv2DTranspose(c if keep else rng.choice([2, 4]), **conv)
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        kw = {"pool_size": _pair(rng, 1, 3), "padding": pad}
        kw["strides"] = 1 if keep else (_pair(rng, 1, 3) if rng.random() < 0.4 else None)
        return getattr(L, cls)(**kw)
    if cls == "BatchNormalization":
        return L.BatchNormalization(axis=rng.choice([-1, -1, -1, 1, 2, 3]), center=rng.random() < 0.8,
                                    scale=rng.random() < 0.8)
    if cls == "Activation":
        return L.Activation(_act(rng))
    if cls == "Dropout":
        return L.Dropout(rng.choice([0.1, 0.25, 0.5]))
    if cls == "SpatialDropout2D":
        return L.SpatialDropout2D(rng.choice([0.1, 0.3]))
    if cls == "GaussianNoise":
        return L.GaussianNoise(rng.choice([0.05, 0.1, 1.0]))
    if cls == "ReLU":
        kw = {}
        if rng.random() < 0.4:
            kw["max_value"] = rng.choice([1.0, 6.0])
        if rng.random() < 0.3:
            kw["negative_slope"] = rng.choice([0.1, 0.2])
        if rng.random() < 0.2:
            kw["threshold"] = rng.choice([0.0, 0.5])
        return L.ReLU(**kw)
    if cls == "LeakyReLU":
        return L.LeakyReLU(negative_slope=rng.choice([0.01, 0.2, 0.3]))
    if cls == "PReLU":
        return L.PReLU(shared_axes=rng.choice([None, [1, 2], [1], [2], [1, 2, 3]]))
    if cls == "ELU":
        return L.ELU(alpha=rng.choice([1.0, 0.5]))
    if cls == "Softmax":
        return L.Softmax(axis=rng.choice([-1, -1, 1, 2, 3, [1, 2], [-2, -3]]))
    if cls == "LayerNormalization":
        return L.LayerNormalization(axis=rng.choice([-1, -1, [1, 2, 3], [2, 3], 1, [-3, -1]]),
                                    center=rng.random() < 0.8, scale=rng.random() < 0.8)
    if cls == "GroupNormalization":
        groups = rng.choice([g for g in (1, 2, 4, c) if c % g == 0] + [-1])
        return L.GroupNormalization(groups=groups, center=rng.random() < 0.8, scale=rng.random() < 0.8)
    if cls == "Rescaling":
        return L.Rescaling(scale=rng.choice([1 / 255, 2.0, 0.5]), offset=rng.choice([0.0, -1.0]))
    if cls == "RandomFlip":
        return L.RandomFlip(rng.choice(["horizontal", "vertical", "horizontal_and_vertical"]))
    if cls == "RandomTranslation":
        return L.RandomTranslation(rng.choice([0.1, 0.2]), rng.choice([0.1, (-0.2, 0.1)]),
                                   fill_mode=rng.choice(["reflect", "constant", "nearest", "wrap"]))
    if cls == "RandomRotation":
        return L.RandomRotation(rng.choice([0.1, 0.25, (-0.1, 0.2)]), fill_mode=rng.choice(["reflect", "constant"]))
    if cls == "RandomZoom":
        return L.RandomZoom(rng.choice([0.1, -0.2, (-0.2, 0.1)]))
    if cls == "RandomContrast":
        return L.RandomContrast(rng.choice([0.1, 0.5, (0.2, 0.4)]))
    if keep:
        return None
    if cls == "ZeroPadding2D":
        return L.ZeroPadding2D(rng.choice([1, 2, (1, 2), ((0, 1), (2, 1))]))
    if cls == "Cropping2D":
        if h < 6 or w < 6:
            return None
        return L.Cropping2D(rng.choice([1, (1, 2), ((0, 1), (2, 1)), ((2, 2), (0, 3))]))
    if cls == "UpSampling2D":
        if h * w > 400:
            return None
        return L.UpSampling2D(_pair(rng, 1, 3), interpolation=rng.choice(["nearest", "bilinear"]))
    if cls == "Permute":
        return L.Permute(rng.choice([(2, 1, 3), (1, 2, 3), (3, 1, 2), (2, 3, 1)]))
    if cls == "Reshape":
        return L.Reshape(rng.choice([(w, h, c), (h * w, c), (-1,), (h, -1, c), (h, w * c, 1)]))
    return None


def vector_layer(L, rng, cls, shape):
    """A layer of class `cls` for a (None, n) input, or None."""
    n = shape[-1]
    if cls == "Dense":
        kw = {"activation": _act(rng)} if rng.random() < 0.7 else {}
        if rng.random() < 0.15:
            kw["use_bias"] = False
        return L.Dense(rng.choice([3, 10, 16, 32]), **kw)
    if cls == "Dropout":
        return L.Dropout(rng.choice([0.2, 0.5]))
    if cls == "BatchNormalization":
        return L.BatchNormalization()
    if cls == "LayerNormalization":
        return L.LayerNormalization()
    if cls == "Activation":
        return L.Activation(_act(rng))
    if cls in ("ReLU", "LeakyReLU", "ELU", "Softmax", "GaussianNoise", "Rescaling", "PReLU"):
        return {"ReLU": L.ReLU, "LeakyReLU": L.LeakyReLU, "ELU": L.ELU, "Softmax": L.Softmax,
                "GaussianNoise": lambda: L.GaussianNoise(0.1), "Rescaling": lambda: L.Rescaling(0.5),
                "PReLU": L.PReLU}[cls]()
    if cls == "Reshape" and n % 2 == 0:
        return L.Reshape((n // 2, 2))
    return None


def _try(layer, x, otherwise=None):
    """Call a layer; `otherwise` when Keras refuses it for this input (the generator goes on without it)."""
    if layer is None:
        return otherwise
    try:
        y = layer(x)
    except Exception:  # noqa: BLE001 - whatever Keras raises, it refused this configuration
        return otherwise
    if any(d is not None and d <= 0 for d in y.shape[1:]):
        return otherwise
    return y


def _name(rng, stem):
    """Sometimes a long explicit name, to exercise the summary's wrapping."""
    if rng.random() < 0.08:
        return f"{stem}_{'very_long_' * rng.randint(2, 6)}{rng.randint(0, 999)}"
    return None


class Builder:
    def __init__(self, keras, rng, classes):
        self.keras, self.L, self.rng = keras, keras.layers, rng
        self.classes = [c for c in classes if hasattr(keras.layers, c)]
        self.single = [c for c in self.classes if c not in MERGES + ["Concatenate", "Flatten", "Dense",
                                                                      "GlobalAveragePooling2D", "GlobalMaxPooling2D"]]

    def _rename(self, layer):
        name = _name(self.rng, layer.name)
        if name:
            layer.name = name  # Keras 3 layers take a name attribute before they are called
        if self.rng.random() < 0.04:
            layer.trainable = False
        return layer

    def one(self, x, keep=False, cls=None):
        """x through one random single-input layer (tries a few classes)."""
        for _ in range(8):
            pick = cls or self.rng.choice(self.single)
            cls = None
            if len(x.shape) == 4:
                layer = image_layer(self.L, self.rng, pick, tuple(x.shape), keep=keep)
            elif len(x.shape) == 2:
                layer = vector_layer(self.L, self.rng, pick, tuple(x.shape))
            else:
                layer = None
            if layer is None:
                continue
            y = _try(self._rename(layer), x)
            if y is not None and (not keep or tuple(y.shape) == tuple(x.shape)):
                return y
        return x

    def chain(self, x, n, keep=False):
        for _ in range(n):
            x = self.one(x, keep=keep)
        return x

    def merge(self, tensors, kinds):
        kind = self.rng.choice([k for k in kinds if k in self.classes] or [None])
        if kind is None:
            return tensors[0]
        layer = getattr(self.L, kind)() if kind != "Concatenate" else self.L.Concatenate(
            axis=self.rng.choice([-1, -1, len(tensors[0].shape) - 1]))
        return _try(self._rename(layer), tensors, tensors[0])

    def residual(self, x):
        if len(x.shape) != 4:
            return x
        y = self.chain(x, self.rng.randint(1, 3), keep=True)
        if self.rng.random() < 0.3 and "Conv2D" in self.classes:  # projection shortcut
            c = self.rng.choice([4, 8])
            y = _try(self.L.Conv2D(c, 3, padding="same"), y, y)
            x = _try(self.L.Conv2D(c, 1), x, x)
        if y is x or tuple(y.shape) != tuple(x.shape):
            return x
        return self.merge([x, y], MERGES)

    def inception(self, x):
        if len(x.shape) != 4:
            return x
        branches = [x] if self.rng.random() < 0.3 else []
        for _ in range(self.rng.randint(2, 3)):
            b = x
            if "Conv2D" in self.classes:
                b = _try(self.L.Conv2D(self.rng.choice([2, 4, 8]), self.rng.choice([1, 3]), padding="same",
                                       name=_name(self.rng, "branch")), b, b)
            b = self.chain(b, self.rng.randint(0, 2), keep=True)
            branches.append(b)
        if len({id(b) for b in branches}) < 2:
            return x
        same = len({tuple(b.shape) for b in branches}) == 1
        return self.merge(branches, ["Concatenate"] + (MERGES if same else []))

    def squeeze_excite(self, x):
        """x * sigmoid(Dense(GAP(x))): a merge whose inputs differ in shape (Keras broadcasts)."""
        if len(x.shape) != 4 or not {"GlobalAveragePooling2D", "Dense", "Multiply"} <= set(self.classes):
            return x
        s = self.L.GlobalAveragePooling2D(keepdims=True)(x)
        s = self.L.Dense(x.shape[-1], activation=self.rng.choice(["sigmoid", "hard_sigmoid"]))(s)
        return _try(self._rename(self.rng.choice([self.L.Multiply, self.L.Add])()), [x, s], x)

    def dense_on_image(self, x):
        """Dense on a (None, h, w, c) tensor acts on the last axis."""
        if len(x.shape) != 4 or "Dense" not in self.classes:
            return x
        dense = self.L.Dense(self.rng.choice([2, 4]), activation=self.rng.choice([None, "relu"]))
        return _try(self._rename(dense), x, x)

    def spatial_concat(self, x):
        """Concatenate along height or width (the other sizes match)."""
        if len(x.shape) != 4 or "Concatenate" not in self.classes:
            return x
        y = self.chain(x, self.rng.randint(1, 2), keep=True)
        if y is x:
            return x
        return _try(self._rename(self.L.Concatenate(axis=self.rng.choice([1, 2, -3, -2]))), [x, y], x)

    def head(self, x):
        if len(x.shape) != 4:
            return x
        tail = self.rng.choice(["Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "none"])
        if tail == "none" or tail not in self.classes:
            return x
        x = _try(getattr(self.L, tail)() if tail == "Flatten" else getattr(self.L, tail)(
            keepdims=self.rng.random() < 0.1), x, x)
        if len(x.shape) != 2 or "Dense" not in self.classes:
            return x
        if self.rng.random() < 0.3:  # two Dense branches merged
            units = self.rng.choice([8, 16])
            a, b = self.L.Dense(units)(x), self.L.Dense(units, activation=_act(self.rng))(x)
            x = self.merge([a, b], MERGES + ["Concatenate"])
        for _ in range(self.rng.randint(0, 2)):
            x = self.one(x)
        return self.L.Dense(self.rng.choice([3, 10]), activation=self.rng.choice(["softmax", None]))(x)


def random_model(keras, rng, index, classes, must_use=None):
    """One random Functional model; `must_use` puts that class in it when the shapes allow."""
    keras.backend.clear_session()  # layer names restart at conv2d, conv2d_1, ... per model
    builder = Builder(keras, rng, classes)
    name = rng.choice([None, None, None, "image", "pixels_in"])
    kind = rng.random()
    if kind < 0.08:  # a vector input: a branching MLP
        inp = x = keras.Input(shape=(rng.randint(4, 40),), name=name)
        return _mlp(keras, builder, rng, inp, index)
    if kind < 0.13 and "Reshape" in builder.classes:  # (h, w) images without a channel axis
        h, w = rng.randint(6, 20), rng.randint(6, 20)
        inp = keras.Input(shape=(h, w), name=name)
        x = keras.layers.Reshape((h, w, 1))(inp)
    else:
        inp = x = keras.Input(shape=(rng.randint(6, 24), rng.randint(6, 24), rng.choice([1, 2, 3])), name=name)
    if must_use in builder.single:
        x = builder.one(x, cls=must_use)
    for _ in range(rng.randint(1, 4)):
        motif = rng.choice(["chain", "residual", "residual", "inception", "inception", "se", "dense_image",
                            "spatial_concat"])
        if motif == "chain":
            x = builder.chain(x, rng.randint(1, 3))
        elif motif == "residual":
            x = builder.residual(x)
        elif motif == "inception":
            x = builder.inception(x)
        elif motif == "se":
            x = builder.squeeze_excite(x)
        elif motif == "dense_image":
            x = builder.dense_on_image(x)
        else:
            x = builder.spatial_concat(x)
    if must_use in MERGES + ["Concatenate"] and len(x.shape) == 4:
        y = builder.chain(x, 1, keep=True)
        x = _try(getattr(keras.layers, must_use)(), [x, y], x)
    x = builder.head(x)
    if x is inp:
        x = keras.layers.Activation("relu")(x)
    return keras.Model(inp, x, name=f"functional_{index}")


def _mlp(keras, builder, rng, inp, index):
    L = keras.layers
    x = inp
    for _ in range(rng.randint(1, 3)):
        branches = [L.Dense(rng.choice([4, 8]), activation=_act(rng))(x) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            branches.append(x)
        branches = [builder.chain(b, rng.randint(0, 2)) for b in branches]
        x = branches[0] if len(branches) == 1 else builder.merge(
            branches, ["Concatenate"] + (MERGES if len({tuple(b.shape) for b in branches}) == 1 else []))
    return keras.Model(inp, L.Dense(rng.choice([2, 10]), activation="softmax")(x), name=f"functional_{index}")


def random_sequential(keras, rng, index, classes):
    """A keras.Sequential stack of random single-input layers (and a head): the linear case."""
    keras.backend.clear_session()
    builder = Builder(keras, rng, classes)
    shape = (rng.randint(6, 24), rng.randint(6, 24), rng.choice([1, 2, 3]))
    x = builder.chain(keras.Input(shape=shape), rng.randint(1, 6))
    if len(x.shape) == 4 and rng.random() < 0.7:
        x = keras.layers.Flatten()(x) if rng.random() < 0.5 else keras.layers.GlobalAveragePooling2D()(x)
    x = builder.chain(x, rng.randint(0, 2))
    if len(x.shape) == 2:
        x = keras.layers.Dense(rng.choice([3, 10]), activation="softmax")(x)
    layers = []
    node = x
    while node._keras_history[0].__class__.__name__ != "InputLayer":
        layer = node._keras_history[0]
        layers.append(layer.__class__.from_config(layer.get_config()))  # fresh, uncalled copies
        node = layer._inbound_nodes[0].input_tensors[0]
    keras.backend.clear_session()
    return keras.Sequential([keras.Input(shape=shape), *reversed(layers)], name=f"sequential_{index}")


def summary_options(rng, model):
    """Keras summary() options to record for a model: show_trainable, layer_range, positions
    (every line_length explicit: the default depends on the terminal)."""
    names = [layer.name for layer in model.layers]
    options = [{"show_trainable": True, "line_length": rng.choice([50, 76, 120])},
               {"layer_range": sorted(rng.sample(names, 2)) if len(names) > 1 else [names[0], names[0]],
                "line_length": 76}]
    functional = model.__class__.__name__ != "Sequential"
    connected = functional and any(len(node.input_tensors) > 1 for layer in model.layers
                                   for node in layer._inbound_nodes)
    ends = sorted(rng.sample(range(15, 95, 8), 3 if connected else 2))
    options.append({"positions": [e / 100 for e in ends] + [1.0], "line_length": rng.choice([76, 90])})
    return options


def case(keras, model, line_lengths, options=()):
    """What the tests compare, from real Keras."""
    rows = []
    for layer in model.layers:
        if layer.__class__.__name__ == "InputLayer":
            continue
        rows.append({"name": layer.name, "class_name": layer.__class__.__name__,
                     "output_shape": list(layer.output.shape), "params": layer.count_params(),
                     "trainable_params": sum(int(v.numpy().size) for v in layer.trainable_weights)})
    summaries = {}
    for width in line_lengths:
        text = io.StringIO()
        model.summary(line_length=width, print_fn=lambda s, line_break=True: text.write(s))
        summaries[str(width)] = text.getvalue()
    with_options = []
    for kwargs in options:
        text = io.StringIO()
        model.summary(print_fn=lambda s, line_break=True: text.write(s), **kwargs)
        with_options.append({"options": kwargs, "text": text.getvalue()})
    return {"json": model.to_json(), "rows": rows, "summaries": summaries, "with_options": with_options,
            "classes": sorted({r["class_name"] for r in rows})}


def dumps(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
