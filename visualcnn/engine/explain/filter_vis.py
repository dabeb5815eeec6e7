"""What does a filter want to see (issue 13 item 4): activation maximisation by gradient
ascent on the input, starting from noise (Erhan et al. 2009; the regularisers of Yosinski
et al. 2015).

The target is one conv filter (the mean of one channel of a layer's output, after its
activation) or one output class (its score before softmax or sigmoid, as Grad-CAM uses).
Each step:
    jitter  roll the image by a random shift of up to `jitter` pixels (the gradient is
            rolled back), so the picture does not exploit single pixel positions;
    ascend  x += learning_rate * range * g / RMS(g): a normalised step, so the rate is
            a fraction of the pixel range whatever the gradient's scale;
    decay   x = centre + (1 - l2) * (x - centre): L2 decay toward the middle of the range;
    blur    every `blur_every` steps a Gaussian blur of `blur_sigma` pixels (high
            frequencies the network does not need fade away);
    clip    to `value_range` (the pixels the model was trained on: MNIST x/255 is [0, 1]).
A filter whose units are all off at a step (a relu with every pre-activation below 0
has no gradient) climbs its pre-activation at that step instead, until units turn on;
a filter behind a layer without its own activation (a pooling after a relu) cannot.
The start noise and the jitter come from default_rng(seed) and the kernels run serially,
so a seed gives the same picture every time. progress(step, total, value) is called after
every step; cancel (a threading.Event or a function returning True) stops between steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradients import Passes, cancelled as _cancelled, find_layer, run, score_is_logit


@dataclass(frozen=True)
class Maximised:
    """image: (*input_shape) the picture; curve: the target's value at each step's forward
    (on the jittered image); initial / final: the value for the start noise and for the
    returned picture (no jitter); steps: steps done (fewer when cancelled)."""

    target: str
    image: np.ndarray
    curve: np.ndarray
    initial: float
    final: float
    steps: int
    cancelled: bool


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, C) blurred over rows and columns, edges reflected."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = image
    for axis in (0, 1):
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        out = sum(t * np.take(padded, np.arange(k, k + size), axis=axis) for k, t in enumerate(taps))
    return out


def maximise(model, layer_name: str | None = None, channel: int | None = None, class_index: int | None = None,
             steps: int = 128, learning_rate: float = 0.05, l2: float = 0.002, blur_every: int = 4,
             blur_sigma: float = 0.5, jitter: int = 1, value_range: tuple[float, float] = (0.0, 1.0),
             seed: int = 0, progress=None, cancel=None) -> Maximised:
    """Activation maximisation of a conv filter (layer_name and channel) or of an output
    class (class_index). Raises ValueError naming the problem."""
    model._require_layers("maximise")
    if not model.built:
        model.build()
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"maximise: steps must be a positive integer, received {steps!r}")
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"maximise: value_range must be (low, high) with low < high, received {value_range!r}")
    last = len(model.layers) - 1
    if class_index is not None:
        units = model.output_shape[-1]
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) \
                or not 0 <= class_index < units:
            raise ValueError(f"maximise: class_index must be a class from 0 to {units - 1}, received {class_index!r}")
        top, logit, index = last, score_is_logit(model), int(class_index)
        dead_start = False
        target = f"class {index}" + (" (score before softmax)" if logit else "")
    else:
        if layer_name is None or channel is None:
            raise ValueError("maximise: give layer_name and channel (a filter) or class_index (an output class)")
        layer, top = find_layer(model, layer_name, "maximise")
        channels = model.analyse().rows[top].inference.output_shape[-1]
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < channels:
            raise ValueError(f"maximise: channel must be from 0 to {channels - 1} for {layer.name!r}, "
                             f"received {channel!r}")
        logit, index = False, int(channel)
        dead_start = layer.config.get("activation") not in (None, "linear")
        target = f"{layer.name} channel {index} (mean activation)"

    if len(model.input_shape) != 3:  # jitter and blur move and smooth pixels of an image
        jitter, blur_every = 0, 0
    rng = np.random.default_rng(seed)
    span, centre = high - low, (low + high) / 2
    shape = tuple(model.input_shape)
    x = np.clip(centre + 0.1 * span * rng.standard_normal(shape), low, high)
    passes = Passes(model)

    def value_and_gradient(image: np.ndarray, want_gradient: bool) -> tuple[float, np.ndarray | None]:
        outs = passes.forward(image[None].astype(np.float32), upto=top)
        out = outs[top]
        if logit:
            out = passes.ctxs[top].saved.get("z", out)
        picked = np.asarray(out, np.float64)[..., index]
        value = float(picked.mean())
        if not want_gradient:
            return value, None
        dy = np.zeros(outs[top].shape, np.float32)
        dy[..., index] = 1.0 / picked.size
        grad = passes.backward(top, dy, -1, skip_activation=logit)
        if dead_start and not np.any(grad):
            # every unit of the filter is off (relu at z < 0): climb its pre-activation instead
            grad = passes.backward(top, dy, -1, skip_activation=True)
        return value, np.asarray(grad[0], np.float64)

    def ascend():
        nonlocal x
        curve: list[float] = []
        initial = value_and_gradient(x, False)[0]
        cancelled = False
        for step in range(steps):
            if _cancelled(cancel):
                cancelled = True
                break
            shift = tuple(int(s) for s in rng.integers(-jitter, jitter + 1, size=2)) if jitter > 0 else (0, 0)
            value, grad = value_and_gradient(np.roll(x, shift, axis=(0, 1)), True)
            grad = np.roll(grad, (-shift[0], -shift[1]), axis=(0, 1))
            rms = float(np.sqrt(np.mean(grad * grad)))
            if rms > 0:
                x = x + learning_rate * span * grad / rms
            x = centre + (1.0 - l2) * (x - centre)
            if blur_every and (step + 1) % blur_every == 0:
                x = gaussian_blur(x, blur_sigma)
            x = np.clip(x, low, high)
            curve.append(value)
            if progress is not None:
                progress(step + 1, steps, value)
        final = value_and_gradient(x, False)[0]
        return curve, initial, final, cancelled

    curve, initial, final, cancelled = run(model, ascend, serial=True)
    return Maximised(target=target, image=x.astype(np.float32), curve=np.array(curve), initial=initial,
                     final=final, steps=len(curve), cancelled=cancelled)


__all__ = ["Maximised", "maximise", "gaussian_blur"]
