"""UpSampling2D: every feature map made `size` times larger (nearest, bilinear or bicubic)."""

from __future__ import annotations

from ..shapes import Field, _tidy_pair, format_hw, format_shape
from .arguments import Arg
from .base import Inference, Layer, kernels, per_value_macs
from .zero_padding2d import MAX_SIDE

_TAPS = {"bilinear": 2, "bicubic": 4}  # input values per axis each output blends


class UpSampling2D(Layer):
    """keras.layers.UpSampling2D (channels last). interpolation "nearest" repeats values;
    "bilinear" and "bicubic" are Keras's half-pixel resize as its torch backend computes it
    (kernels/resize.py); "lanczos3"/"lanczos5" (which the torch backend refuses too) are
    refused by the argument check. Never writes into its input x or the dy it is given."""

    class_name = "UpSampling2D"
    family = "reshaping"
    image_input = True
    ARGS = (Arg("size", "pair", (2, 2), minimum=1, maximum=MAX_SIDE, doc="how many times taller and wider"),
            Arg("interpolation", "choice", "nearest", choices=("nearest", "bilinear", "bicubic"),
                doc="'nearest' repeats each value; 'bilinear' blends the 2x2 nearest, 'bicubic' the 4x4"))
    POSITIONAL = 1
    explanation = ("Makes each feature map larger by repeating (or blending) its values: "
                   "the opposite of pooling, used to grow maps back to image size.")
    starter_config = {"size": 2}

    def __init__(self, *args, **kwargs):
        # Keras lower-cases the mode ("Bilinear" works there)
        if isinstance(kwargs.get("interpolation"), str):
            kwargs["interpolation"] = kwargs["interpolation"].lower()
        super().__init__(*args, **kwargs)

    def _infer(self, input_shape, field):
        sh, sw = self.config["size"]
        h, w, ch = input_shape[1:]
        shape = (None, h * sh, w * sw, ch)
        mode = self.config["interpolation"]
        how = ("each value is repeated in a " + format_hw((sh, sw)) + " block" if mode == "nearest" else
               f"each output blends the {_TAPS[mode]}x{_TAPS[mode]} input values nearest its centre "
               f"(half-pixel {mode})")
        lines = (f"out_h = {h}*{sh} = {shape[1]}", f"out_w = {w}*{sw} = {shape[2]}", how,
                 f"channels unchanged = {ch}", "params = 0 (nothing to learn)",
                 f"output shape = {format_shape(shape)}")
        return Inference(shape, (), lines, self._field(field))

    def _macs(self, input_shape, output_shape):
        mode = self.config["interpolation"]
        if mode == "nearest":
            return 0, "MACs = 0 (nearest: repeats values)"
        taps = _TAPS[mode] ** 2
        return per_value_macs(output_shape, f"{mode}: one multiply-add per blended input value", per=taps)

    def _field(self, field: Field) -> Field:
        """Neighbouring outputs are 1/size input pixels apart, centred on their source
        pixel (as a transposed conv with kernel = stride = size); bilinear reads 2 inputs
        per axis and bicubic 4, wherever they actually blend (size > 1)."""
        size = self.config["size"]
        out = field.through_transpose(size, size, (1, 1))
        taps = _TAPS.get(self.config["interpolation"], 1)
        grown = tuple(r + ((taps - 1) * j if s > 1 else 0) for r, j, s in zip(out.size, field.jump, size))
        return Field(_tidy_pair(grown), out.jump, out.start)

    def _setup(self, rng) -> None:
        from ..kernels import resize

        self._resize = resize
        mode = self.config["interpolation"]
        # kernel name stems: forward, backward (bilinear has its own faster forward)
        self._kinds = {"nearest": ("nearest", "nearest"), "bilinear": ("two_taps", "taps"),
                       "bicubic": ("taps", "taps")}[mode]
        if mode != "nearest":
            (sh, sw), (h, w) = self.config["size"], self.built_input_shape[1:3]
            self._geometry = (*resize.resize_taps(h, sh, mode), *resize.resize_taps(w, sw, mode))
        else:
            self._geometry = self.config["size"]

    def _kernel(self, name: str, serial: bool):
        kind = self._kinds[0 if name == "forward" else 1]
        return getattr(self._resize, f"upsample_{kind}_{name}" + ("_serial" if serial else ""))

    def forward(self, x, ctx, training=False):
        # training runs the parallel kernels; inference asks parallel.py (a second thread must not)
        serial = not training and kernels().parallel.use_serial()
        y = ctx.buf("y", (x.shape[0], *self.built_output_shape[1:]))
        self._kernel("forward", serial)(x, y, *self._geometry)
        ctx.saved["x_shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", ctx.saved["x_shape"])
        self._kernel("backward", kernels().parallel.use_serial())(dy, dx, *self._geometry)
        return dx

    def describe(self):
        size = self.config["size"]
        text = f"x{size[0]}" if size[0] == size[1] else f"x{format_hw(size)}"
        mode = self.config["interpolation"]
        return text if mode == "nearest" else f"{text}, {mode}"
