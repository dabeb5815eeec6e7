"""Reshape: the same values, read in the same order, arranged into a new shape."""

from __future__ import annotations

import math

from ..shapes import format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer, fmt_count


class Reshape(Layer):
    """keras.layers.Reshape. target_shape excludes the batch axis; one entry may be -1
    (worked out from the others). forward/backward return views (no copy), so it never
    writes anything, its input and the dy it is given included."""

    class_name = "Reshape"
    family = "reshaping"
    ARGS = (Arg("target_shape", "int_tuple", minimum=-1,
                doc="the new shape without the batch axis; one -1 is worked out"),)
    POSITIONAL = 1
    explanation = ("Arranges the same values into a new shape (row by row, channels last); "
                   "the number of values must stay the same.")
    starter_config = {"target_shape": [-1]}

    def _check_config(self) -> None:
        target = self.config["target_shape"]
        if target.count(-1) > 1:
            raise ConfigError(f"{self.where}: target_shape {list(target)} has more than one -1; "
                              "only one size can be worked out from the others")
        if 0 in target:
            raise ConfigError(f"{self.where}: target_shape {list(target)} has a 0; every size must be at least 1 "
                              "(or -1 for the one worked out)")

    def _infer(self, input_shape, field):
        target = self.config["target_shape"]
        rest = input_shape[1:]
        total = math.prod(rest)
        lines = [f"values per example = {'*'.join(str(d) for d in rest)} = {fmt_count(total)}"]
        known = math.prod(d for d in target if d != -1)
        shown = format_shape(target)
        if -1 in target:
            if total % known:
                raise ConfigError(f"{self.where}: cannot arrange the {fmt_count(total)} values of "
                                  f"{format_shape(input_shape)} into {shown}: {fmt_count(total)} is not a multiple "
                                  f"of {fmt_count(known)} (the product of the other sizes); choose sizes whose "
                                  f"product divides {fmt_count(total)}")
            missing = total // known
            lines.append(f"-1 = {fmt_count(total)} / {fmt_count(known)} = {fmt_count(missing)}" if known > 1
                         else f"-1 = {fmt_count(total)} (all the values)")
            target = tuple(missing if d == -1 else d for d in target)
        elif known != total:
            raise ConfigError(f"{self.where}: target_shape {shown} holds {fmt_count(known)} values but the input "
                              f"{format_shape(input_shape)} has {fmt_count(total)} per example; the sizes must "
                              f"multiply to {fmt_count(total)} (or write -1 for one size to have it worked out)")
        shape = (None, *target)
        lines += ["params = 0 (only rearranges values)", f"output shape = {format_shape(shape)}"]
        return Inference(shape, (), tuple(lines), _field_through(field, input_shape, shape))

    def buffer_values(self, input_shape, output_shape, training):
        return 0  # forward and backward are reshaped views

    def forward(self, x, ctx, training=False):
        ctx.saved["x_shape"] = x.shape
        return x.reshape(x.shape[0], *self.built_output_shape[1:])

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        return dy.reshape(ctx.saved["x_shape"]) if need_dx else None

    def describe(self):
        return "to " + "x".join(str(d) for d in self.config["target_shape"])


def _field_through(field, input_shape, output_shape):
    """Rows and columns of an image kept as they are (only the channels regrouped): the
    field is unchanged. Otherwise the image's positions are mixed up, as by Flatten."""
    if len(input_shape) != 4 or (len(output_shape) == 4 and output_shape[1:3] == input_shape[1:3]):
        return field
    return field.whole(input_shape[1:3])
