"""Convolution layers: Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose."""

from __future__ import annotations

from ..shapes import Field, conv_output_length, conv_transpose_output_length, format_hw, format_shape
from .arguments import Arg, ConfigError
from . import relu_handoff
from .base import Inference, Layer, WeightSpec, fmt_count, inference_serial, kernels, spatial_window, weight_line

KERNEL = Arg("kernel_size", "pair", minimum=1, doc="height and width of each filter")
STRIDES = Arg("strides", "pair", (1, 1), minimum=1, doc="how far the filter moves each step")
PADDING = Arg("padding", "padding", "valid", doc="'valid': no border; 'same': zero border keeps ceil(size/stride)")
DILATION = Arg("dilation_rate", "pair", (1, 1), minimum=1, doc="spacing between filter taps")
ACTIVATION = Arg("activation", "activation", "linear", doc="function applied to every output")
USE_BIAS = Arg("use_bias", "bool", True, doc="add one learned offset per output channel")
BIAS_INIT = Arg("bias_initializer", "initializer", "zeros")
# the widest input the few-channel kernels take (kernels/conv/few_channel.MAX_CHANNELS,
# which imports numba; this module must not)
FEW_CHANNELS = 4
FILTERS = Arg("filters", "int", minimum=1, doc="number of filters = output channels")
DEPTH_MULTIPLIER = Arg("depth_multiplier", "int", 1, minimum=1, doc="filters per input channel")


class _ConvBase(Layer):
    family = "convolution"
    image_input = True

    def _check_config(self) -> None:
        if max(self.config["strides"]) > 1 and max(self.config["dilation_rate"]) > 1:
            raise ConfigError(
                f"{self.where}: strides {format_hw(self.config['strides'])} cannot be combined with "
                f"dilation_rate {format_hw(self.config['dilation_rate'])}; Keras allows strides > 1 "
                "only when dilation_rate is 1"
            )

    def _spatial(self, input_shape: tuple) -> tuple[tuple[int, int], list[str]]:
        c = self.config
        h, w = input_shape[1], input_shape[2]
        rows = conv_output_length(h, c["kernel_size"][0], c["strides"][0], c["dilation_rate"][0], c["padding"])
        cols = conv_output_length(w, c["kernel_size"][1], c["strides"][1], c["dilation_rate"][1], c["padding"])
        out = (rows.value, cols.value)
        spatial_window(self, "kernel", (h, w), c["kernel_size"], out, (rows.formula, cols.formula),
                       c["padding"], c["dilation_rate"])
        return out, [f"out_h = {rows.formula}", f"out_w = {cols.formula}"]

    def _field(self, field: Field, input_shape: tuple) -> Field:
        c = self.config
        return field.through_window(c["kernel_size"], c["strides"], c["dilation_rate"], c["padding"], input_shape[1:3])

    def _setup(self, rng) -> None:
        from .. import activations

        c = self.config
        (h, w), (kh, kw) = self.built_input_shape[1:3], c["kernel_size"]
        (sh, sw), (dh, dw) = c["strides"], c["dilation_rate"]
        if c["padding"] == "same":
            pad = (kernels().same_padding(h, kh, sh, dh)[1], kernels().same_padding(w, kw, sw, dw)[1])
        else:
            pad = (0, 0)
        self._geom = {"strides": (sh, sw), "dilation": (dh, dw), "pad": pad}
        self._act = activations.get(c["activation"])
        self._fused_relu = self._act.name == "relu"

    def _bias(self):
        return self.weight("bias") if self.config["use_bias"] else None

    def workspace_values(self, input_shape, output_shape, batch_size, threads):
        """Per worker thread (kernels/conv): an im2col chunk of at least one image (about
        512 rows), a padded input image and the weight-gradient partial sums; or, where the
        planner picks Winograd (3x3, unit strides, >= 16 channels), its transformed
        kernels (16 positions of F(2x2, 3x3) and 36 of F(4x4, 3x3), each for the forward
        and the input gradient) and one chunk of transformed inputs and outputs per thread
        for each op the plan runs (``scratch_positions``: the forward, and both gradients
        in one pass or each on its own). A 3x3 conv on few channels (a first conv) takes
        its weight gradient from one image's output gradient per thread, channel-major in
        rows of the padded width, plus three gathered input rows (each at least as long
        as the output channels: the relu mask's scratch); before a max pool it also maps
        the pool's winners into that layout once per batch (``backward_from_pool``) and,
        for a 2x2 pool, computes two output rows per thread to pool
        (``forward_into_pool``)."""
        (kh, kw), (dh, dw) = self.config["kernel_size"], self.config["dilation_rate"]
        h, w, c = input_shape[1:4]
        oh, ow, co = output_shape[1:4]
        k = kh * kw * c
        padded = (h + (kh - 1) * dh) * (w + (kw - 1) * dw) * c
        plan = kernels().plan_conv((kh, kw, c, co), tuple(self.config["strides"]), (dh, dw), (0, 0),
                                   input_hw=(h, w), output_hw=(oh, ow))
        if hasattr(plan.forward_strategy, "scratch_positions"):  # Winograd
            out_hw, dil = (oh, ow), (dh, dw)
            positions = plan.forward_strategy.scratch_positions(out_hw, dil, batch_size)
            if plan.both_strategy is not None:
                positions += plan.both_strategy.scratch_positions(out_hw, dil, batch_size)
            else:
                positions += (plan.input_strategy.scratch_positions((h, w), dil, batch_size)
                              + plan.kernel_strategy.scratch_positions(out_hw, dil, batch_size))
            pads = 2 * (oh + 2 + 2 * dh) * (ow + 2 + 2 * dw) * max(c, co)
            return 104 * c * co + threads * (positions * (c + co) + 16 * c * co + pads)
        im2col = max(512, oh * ow) * k + padded + k * co + co  # also a few-channel conv's input gradient
        if (kh, kw) == (3, 3) and c <= FEW_CHANNELS:
            wp = w + (kw - 1) * dw
            return threads * (im2col + co * oh * wp + 3 * max(oh * wp, co) + 2 * ow * co) + oh * ow * co
        return threads * im2col

    def _out(self, ctx, name, n):
        return ctx.buf(name, (n, *self.built_output_shape[1:]))

    def _activate(self, z, ctx):
        y = super()._activate(z, ctx)
        if self._fused_relu:
            relu_handoff.mark_relu_output(y)  # a MaxPooling2D after it may apply relu' for us
        return y

    def _activation_backward(self, dy, ctx, skip):
        skip = skip or (self._fused_relu and relu_handoff.relu_already_applied(dy))
        return super()._activation_backward(dy, ctx, skip)

    def _settings(self) -> list[str]:
        c = self.config
        parts = [format_hw(c["kernel_size"]), c["activation"], c["padding"]]
        if c["strides"] != (1, 1):
            parts.append(f"stride {_pair_text(c['strides'])}")
        if c["dilation_rate"] != (1, 1):
            parts.append(f"dilation {_pair_text(c['dilation_rate'])}")
        return parts


def _pair_text(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else format_hw(pair)


def _finish(output_shape: tuple, weights: list[WeightSpec], terms: list, lines: list[str], field: Field) -> Inference:
    total = sum(w.size for w in weights)
    lines.append(weight_line(terms, total))
    lines.append(f"output shape = {format_shape(output_shape)}")
    return Inference(output_shape, tuple(weights), tuple(lines), field)


class Conv2D(_ConvBase):
    class_name = "Conv2D"
    starter_config = {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}
    ARGS = (FILTERS, KERNEL, STRIDES, PADDING, DILATION, ACTIVATION, USE_BIAS,
            Arg("kernel_initializer", "initializer", "glorot_uniform"), BIAS_INIT)
    POSITIONAL = 4
    explanation = ("Slides small learned filters over the image; each filter lights up where it "
                   "finds its pattern (an edge, a curve), giving one feature map per filter.")

    def _infer(self, input_shape, field):
        c = self.config
        (oh, ow), lines = self._spatial(input_shape)
        kh, kw = c["kernel_size"]
        cin, f = input_shape[3], c["filters"]
        lines.append(f"channels = filters = {f}")
        weights = [WeightSpec("kernel", (kh, kw, cin, f))]
        terms = [(f"{kh}*{kw}*{cin}*{f}", kh * kw * cin * f)]
        if c["use_bias"]:
            weights.append(WeightSpec("bias", (f,)))
            terms.append((f"{f}", f))
        return _finish((None, oh, ow, f), weights, terms, lines, self._field(field, input_shape))

    def _macs(self, input_shape, output_shape):
        (oh, ow, f), (kh, kw), cin = output_shape[1:], self.config["kernel_size"], input_shape[3]
        macs = oh * ow * f * kh * kw * cin
        return macs, f"MACs = {oh}*{ow}*{f} * {kh}*{kw}*{cin} = {fmt_count(macs)}"

    def _setup(self, rng) -> None:
        super()._setup(rng)
        # the kernel strategy for each op, chosen once (kernels/conv/planner.py)
        self.plan = kernels().plan_conv(self.weights[0].shape, **self._geom,
                                        input_hw=self.built_input_shape[1:3], output_hw=self.built_output_shape[1:3])

    def forward(self, x, ctx, training=False):
        z = self._out(ctx, "z", x.shape[0])
        ctx.saved["x"] = x
        fold = None if training else getattr(ctx, "fold_bn", None)
        if fold is not None:
            # inference with the BatchNormalization after it folded in (and the relu after
            # that, when the model fused one into the BatchNormalization)
            kernel, bias = fold.fold_into(self.weights[0], self._bias(), ctx)
            self.plan.forward(x, kernel, bias, z, relu=bool(getattr(ctx, "fuse_relu", False)), ws=ctx.ws,
                              serial=inference_serial(training))
            return z
        self.plan.forward(x, self.weights[0], self._bias(), z, relu=self._fused_relu, ws=ctx.ws,
                          serial=inference_serial(training))
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        x, kernel = ctx.saved["x"], self.weights[0]
        grad_bias = ctx.grad("bias", (kernel.shape[3],)) if self.config["use_bias"] else None
        if not need_dx and self.masks_relu_in_gradient(dy, skip_activation):
            # a first conv: relu's derivative applied as the weight gradient reads dy,
            # instead of a pass of its own over the layer's largest gradient
            self.plan.backward_kernel(x, dy, ctx.grad("kernel", kernel.shape), grad_bias, ws=ctx.ws,
                                      relu_out=ctx.saved["y"])
            return None
        dz = self._activation_backward(dy, ctx, skip_activation)
        if not need_dx:
            self.plan.backward_kernel(x, dz, ctx.grad("kernel", kernel.shape), grad_bias, ws=ctx.ws)
            return None
        dx = ctx.buf("dx", x.shape)
        self.plan.backward(x, dz, kernel, ctx.grad("kernel", kernel.shape), grad_bias, dx, ws=ctx.ws)
        return dx

    def masks_relu_in_gradient(self, dy=None, skip_activation=False) -> bool:
        """Whether, without an input gradient, the weight gradient applies this layer's
        relu derivative itself (a few-channel kernel: ``ConvPlan.takes_relu_output``), so
        no relu backward pass and no buffer for its result. With dy, also that the relu
        is still to be applied (not by a max pool after it: layers/relu_handoff.py)."""
        if not (self._fused_relu and self.plan.takes_relu_output):
            return False
        return dy is None or not (skip_activation or relu_handoff.relu_already_applied(dy))

    def pool_takes_over(self, input_shape, output_shape, pool) -> tuple[bool, bool]:
        """(forward, backward): whether a training step runs ``pool`` (the layer right after
        this one, this being the first with weights) inside this layer's forward
        (``forward_into_pool``) and backward (``backward_from_pool``). From the config and
        shapes only, for the memory estimate before anything is built; the same decision as
        ``takes_pooled_forward`` / ``takes_pooled_gradient`` on the built layer, where the
        plan decides (tests/engine/test_memory.py checks that they agree)."""
        backward = pool.class_name == "MaxPooling2D" and self.relu_masked_in_gradient(input_shape)
        return backward and pool.halves_without_padding(output_shape), backward

    def relu_masked_in_gradient(self, input_shape) -> bool:
        """``masks_relu_in_gradient`` from the config and shapes only, for the memory
        estimate before anything is built: a relu and a 3x3 kernel on few channels with
        column stride 1, whose weight gradient the few-channel kernel takes (the same
        decision as the built plan's; tests/engine/test_memory.py checks that they agree)."""
        kh, kw = self.config["kernel_size"]
        return (self.config["activation"] == "relu" and (kh, kw) == (3, 3) and input_shape[3] <= FEW_CHANNELS
                and self.config["strides"][1] == 1)

    def takes_pooled_forward(self, pool) -> bool:
        """Whether ``forward_into_pool`` can stand in for this layer's forward and ``pool``'s
        (a MaxPooling2D right after it): a first conv that takes its gradient from the
        pool (``takes_pooled_gradient``) and a 2x2 / stride 2 pool without padding."""
        return (self.takes_pooled_gradient() and self.plan.takes_pooled_forward
                and pool.halves_without_padding(self.built_output_shape))

    def forward_into_pool(self, x, ctx, pool, pool_ctx):
        """The max pool's output of relu(conv(x)), its forward state recorded for its
        backward (``pooled_gradient``), without this layer's own output: bit-identical to
        ``forward`` then ``pool.forward`` (``kernels/conv/few_channel._fwd_pool_image``).
        Only ahead of ``backward_from_pool``, which needs no more than x and the pool's
        state."""
        ctx.saved["x"] = x
        conv_shape = (x.shape[0], *self.built_output_shape[1:])
        y, argmax = pool.fused_outputs(pool_ctx, x.shape[0])
        self.plan.forward_pooled(x, self.weights[0], self._bias(), conv_shape, y, argmax, ws=ctx.ws,
                                 serial=False)
        pool.record_fused_forward(pool_ctx, conv_shape, y, argmax)
        return y

    def takes_pooled_gradient(self) -> bool:
        """Whether ``backward_from_pool`` can stand in for a max pool's backward and this
        layer's own (with no input gradient): a relu fused into the conv and a weight
        gradient that reads the pool's gradient (few input channels: a first conv)."""
        return self._fused_relu and self.plan.takes_pooled_gradient

    def backward_from_pool(self, pooled, ctx) -> None:
        """The weight gradients from the gradient of the MaxPooling2D right after this
        layer (``MaxPooling2D.pooled_gradient``), the layer below needing no gradient:
        bit-identical to the pool's backward followed by ``backward(need_dx=False)``,
        without the batch-sized gradient between them (layers/relu_handoff.py)."""
        x, kernel = ctx.saved["x"], self.weights[0]
        grad_bias = ctx.grad("bias", (kernel.shape[3],)) if self.config["use_bias"] else None
        self.plan.backward_kernel_pooled(x, pooled, ctx.grad("kernel", kernel.shape), grad_bias, ws=ctx.ws)

    def describe(self):
        return ", ".join([f"{self.config['filters']} filters"] + self._settings())


class DepthwiseConv2D(_ConvBase):
    class_name = "DepthwiseConv2D"
    starter_config = {"kernel_size": [3, 3], "activation": "relu"}
    ARGS = (KERNEL, STRIDES, PADDING, DEPTH_MULTIPLIER, DILATION, ACTIVATION, USE_BIAS,
            Arg("depthwise_initializer", "initializer", "glorot_uniform"), BIAS_INIT)
    POSITIONAL = 3
    explanation = ("Filters each input channel on its own (no mixing between channels): "
                   "cheap spatial filtering, depth_multiplier filters per channel.")

    def _infer(self, input_shape, field):
        c = self.config
        (oh, ow), lines = self._spatial(input_shape)
        kh, kw = c["kernel_size"]
        cin, dm = input_shape[3], c["depth_multiplier"]
        lines.append(f"channels = in_channels*depth_multiplier = {cin}*{dm} = {cin * dm}")
        weights = [WeightSpec("depthwise_kernel", (kh, kw, cin, dm))]
        terms = [(f"{kh}*{kw}*{cin}*{dm}", kh * kw * cin * dm)]
        if c["use_bias"]:
            weights.append(WeightSpec("bias", (cin * dm,)))
            terms.append((f"{cin}*{dm}", cin * dm))
        return _finish((None, oh, ow, cin * dm), weights, terms, lines, self._field(field, input_shape))

    def _macs(self, input_shape, output_shape):
        (oh, ow, ch), (kh, kw) = output_shape[1:], self.config["kernel_size"]
        macs = oh * ow * ch * kh * kw
        return macs, f"MACs = {oh}*{ow}*{ch} * {kh}*{kw} = {fmt_count(macs)} (each output channel reads one input channel)"

    def forward(self, x, ctx, training=False):
        k = kernels()
        z = self._out(ctx, "z", x.shape[0])
        ctx.saved["x"] = x
        bias = self._bias()
        fwd = k.depthwise_conv2d_forward
        if not training and k.parallel.use_serial():
            fwd = k.depthwise_conv2d_forward_serial
        g = self._geom
        fwd(x, self.weights[0], k.NO_BIAS if bias is None else bias, z, *g["strides"], *g["dilation"],
            *g["pad"], self._fused_relu)
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        k = kernels()
        dz = self._activation_backward(dy, ctx, skip_activation)
        x, kernel, g = ctx.saved["x"], self.weights[0], self._geom
        grad_bias = ctx.grad("bias", (dz.shape[3],)) if self.config["use_bias"] else None
        k.depthwise_conv2d_backward_kernel(x, dz, ctx.grad("depthwise_kernel", kernel.shape), grad_bias,
                                           *g["strides"], *g["dilation"], *g["pad"], ws=ctx.ws)
        if not need_dx:
            return None
        dx = ctx.buf("dx", x.shape)
        k.depthwise_conv2d_backward_input(dz, kernel, dx, *g["strides"], *g["dilation"], *g["pad"])
        return dx

    def describe(self):
        dm = self.config["depth_multiplier"]
        return ", ".join(([f"x{dm} per channel"] if dm != 1 else []) + self._settings())


class SeparableConv2D(_ConvBase):
    class_name = "SeparableConv2D"
    starter_config = {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}
    ARGS = (FILTERS, KERNEL, STRIDES, PADDING, DEPTH_MULTIPLIER, DILATION, ACTIVATION, USE_BIAS,
            Arg("depthwise_initializer", "initializer", "glorot_uniform"),
            Arg("pointwise_initializer", "initializer", "glorot_uniform"), BIAS_INIT)
    POSITIONAL = 4
    explanation = ("A depthwise filter per channel followed by a 1x1 convolution that mixes the "
                   "channels: most of a Conv2D's power for far fewer parameters.")

    def _infer(self, input_shape, field):
        c = self.config
        (oh, ow), lines = self._spatial(input_shape)
        kh, kw = c["kernel_size"]
        cin, dm, f = input_shape[3], c["depth_multiplier"], c["filters"]
        lines.append(f"channels = filters = {f}")
        weights = [WeightSpec("depthwise_kernel", (kh, kw, cin, dm)),
                   WeightSpec("pointwise_kernel", (1, 1, cin * dm, f))]
        terms = [(f"{kh}*{kw}*{cin}*{dm}", kh * kw * cin * dm), (f"{cin}*{dm}*{f}", cin * dm * f)]
        if c["use_bias"]:
            weights.append(WeightSpec("bias", (f,)))
            terms.append((f"{f}", f))
        return _finish((None, oh, ow, f), weights, terms, lines, self._field(field, input_shape))

    def _macs(self, input_shape, output_shape):
        (oh, ow, f), (kh, kw) = output_shape[1:], self.config["kernel_size"]
        mid = input_shape[3] * self.config["depth_multiplier"]
        depthwise, pointwise = oh * ow * mid * kh * kw, oh * ow * f * mid
        return depthwise + pointwise, (f"MACs = {oh}*{ow}*{mid} * {kh}*{kw} + {oh}*{ow}*{f} * {mid} = "
                                       f"{fmt_count(depthwise + pointwise)} (depthwise + pointwise)")

    def buffer_values(self, input_shape, output_shape, training):
        mid = output_shape[1] * output_shape[2] * input_shape[3] * self.config["depth_multiplier"]
        return super().buffer_values(input_shape, output_shape, training) + mid * (2 if training else 1)

    def _setup(self, rng) -> None:
        super()._setup(rng)
        self.plan = kernels().plan_conv(self.weights[1].shape)  # the pointwise 1x1 conv

    def forward(self, x, ctx, training=False):
        k = kernels()
        n, g = x.shape[0], self._geom
        depthwise, pointwise = self.weights[0], self.weights[1]
        mid = ctx.buf("mid", (n, *self.built_output_shape[1:3], depthwise.shape[2] * depthwise.shape[3]))
        fwd = k.depthwise_conv2d_forward
        if not training and k.parallel.use_serial():
            fwd = k.depthwise_conv2d_forward_serial
        fwd(x, depthwise, k.NO_BIAS, mid, *g["strides"], *g["dilation"], *g["pad"], False)
        z = self._out(ctx, "z", n)
        ctx.saved["x"], ctx.saved["mid"] = x, mid
        self.plan.forward(mid, pointwise, self._bias(), z, relu=self._fused_relu, ws=ctx.ws,
                          serial=inference_serial(training))
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        k = kernels()
        dz = self._activation_backward(dy, ctx, skip_activation)
        x, mid, g = ctx.saved["x"], ctx.saved["mid"], self._geom
        depthwise, pointwise = self.weights[0], self.weights[1]
        grad_bias = ctx.grad("bias", (pointwise.shape[3],)) if self.config["use_bias"] else None
        self.plan.backward_kernel(mid, dz, ctx.grad("pointwise_kernel", pointwise.shape), grad_bias, ws=ctx.ws)
        dmid = ctx.buf("dmid", mid.shape)
        self.plan.backward_input(dz, pointwise, dmid, ws=ctx.ws)
        k.depthwise_conv2d_backward_kernel(x, dmid, ctx.grad("depthwise_kernel", depthwise.shape), None,
                                           *g["strides"], *g["dilation"], *g["pad"], ws=ctx.ws)
        if not need_dx:
            return None
        dx = ctx.buf("dx", x.shape)
        k.depthwise_conv2d_backward_input(dmid, depthwise, dx, *g["strides"], *g["dilation"], *g["pad"])
        return dx

    def describe(self):
        return ", ".join([f"{self.config['filters']} filters"] + self._settings())


class Conv2DTranspose(_ConvBase):
    class_name = "Conv2DTranspose"
    starter_config = {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}
    ARGS = (FILTERS, KERNEL, STRIDES, PADDING,
            Arg("output_padding", "optional_pair", None, minimum=0, doc="extra rows/columns at the end"),
            DILATION, ACTIVATION, USE_BIAS, Arg("kernel_initializer", "initializer", "glorot_uniform"), BIAS_INIT)
    POSITIONAL = 4
    explanation = ("Runs a convolution backwards: spreads each input value over a kernel-sized "
                   "patch, so the image grows (used to upsample, e.g. in decoders).")

    def _check_config(self):
        super()._check_config()
        op = self.config["output_padding"]
        if op is not None and any(p >= s for p, s in zip(op, self.config["strides"])):
            raise ConfigError(
                f"{self.where}: output_padding {format_hw(op)} must be smaller than strides "
                f"{format_hw(self.config['strides'])}"
            )

    def _infer(self, input_shape, field):
        c = self.config
        h, w = input_shape[1], input_shape[2]
        op = c["output_padding"] or (None, None)
        rows = conv_transpose_output_length(h, c["kernel_size"][0], c["strides"][0], c["dilation_rate"][0], c["padding"], op[0])
        cols = conv_transpose_output_length(w, c["kernel_size"][1], c["strides"][1], c["dilation_rate"][1], c["padding"], op[1])
        out = (rows.value, cols.value)
        spatial_window(self, "kernel", (h, w), c["kernel_size"], out, (rows.formula, cols.formula), c["padding"],
                       allow_zero=True)
        lines = [f"out_h = {rows.formula}", f"out_w = {cols.formula}"]
        kh, kw = c["kernel_size"]
        cin, f = input_shape[3], c["filters"]
        lines.append(f"channels = filters = {f}")
        weights = [WeightSpec("kernel", (kh, kw, f, cin))]
        terms = [(f"{kh}*{kw}*{f}*{cin}", kh * kw * f * cin)]
        if c["use_bias"]:
            weights.append(WeightSpec("bias", (f,)))
            terms.append((f"{f}", f))
        new_field = field.through_transpose(c["kernel_size"], c["strides"], c["dilation_rate"])
        return _finish((None, out[0], out[1], f), weights, terms, lines, new_field)

    def _macs(self, input_shape, output_shape):
        (h, w, cin), (kh, kw), f = input_shape[1:], self.config["kernel_size"], self.config["filters"]
        macs = h * w * cin * kh * kw * f
        return macs, (f"MACs = {h}*{w}*{cin} * {kh}*{kw}*{f} = {fmt_count(macs)} "
                      "(each input value spreads through the kernel)")

    def _setup(self, rng) -> None:
        super()._setup(rng)
        c = self.config
        pad = []
        for axis in (0, 1):
            size_in, size_out = self.built_input_shape[1 + axis], self.built_output_shape[1 + axis]
            k_eff = (c["kernel_size"][axis] - 1) * c["dilation_rate"][axis] + 1
            # TensorFlow's conv2d_transpose: the gradient of a conv mapping size_out ->
            # size_in; "same" pads that conv with the odd pixel at the end.
            total = max((size_in - 1) * c["strides"][axis] + k_eff - size_out, 0) if c["padding"] == "same" else 0
            pad.append(total // 2)
        self._geom["pad"] = tuple(pad)
        self.plan = kernels().plan_conv_transpose(self.weights[0].shape, **self._geom)

    def forward(self, x, ctx, training=False):
        z = self._out(ctx, "z", x.shape[0])
        ctx.saved["x"] = x
        fold = None if training else getattr(ctx, "fold_bn", None)
        if fold is not None:
            # inference with the BatchNormalization after it folded in (and the relu after
            # that, when the model fused one into the BatchNormalization)
            kernel, bias = fold.fold_into(self.weights[0], self._bias(), ctx)
            self.plan.forward(x, kernel, bias, z, relu=bool(getattr(ctx, "fuse_relu", False)), ws=ctx.ws,
                              serial=inference_serial(training))
            return z
        self.plan.forward(x, self.weights[0], self._bias(), z, relu=self._fused_relu, ws=ctx.ws,
                          serial=inference_serial(training))
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        dz = self._activation_backward(dy, ctx, skip_activation)
        x, kernel = ctx.saved["x"], self.weights[0]
        grad_bias = ctx.grad("bias", (kernel.shape[2],)) if self.config["use_bias"] else None
        self.plan.backward_kernel(x, dz, ctx.grad("kernel", kernel.shape), grad_bias, ws=ctx.ws)
        if not need_dx:
            return None
        dx = ctx.buf("dx", x.shape)
        self.plan.backward_input(dz, kernel, dx, ws=ctx.ws)
        return dx

    def describe(self):
        return ", ".join([f"{self.config['filters']} filters"] + self._settings())


__all__ = ["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"]
