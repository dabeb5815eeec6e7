"""Conv (relu) -> MaxPooling2D: the pool applies relu's derivative, the conv skips its pass.

Why: after a conv with activation="relu", the gradient the pool sends back is zero
everywhere except at each window's winning cell, and there relu's derivative is
exactly "the pool's output > 0" (max(relu(z)) > 0 iff the winner's z > 0). So
``maxpool2d_backward(..., relu_out=y)`` can route only those gradients and the conv can
take what it receives as the gradient of its pre-activation. That saves the conv's relu
backward: a full pass over its output (read y, read dy, write dz; the seed CNN's first
conv output is 5.5 MB per batch of 64).

How, without a model-level protocol: the two layers recognise each other's arrays by
identity. A conv whose relu is fused marks its output; a MaxPooling2D whose input is
that very array masks with its own output and marks its input gradient; a conv that
receives that very array as dy skips its relu backward. Anything in between (another
layer, a copy) breaks the identity, and both sides fall back to the ordinary passes.
The registries hold weak references only, keyed by id() and checked with ``is``.
"""

from __future__ import annotations

import weakref

_relu_outputs: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_relu_applied: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

# tests switch the hand-off off to compare with the ordinary passes
ENABLED = True


def mark_relu_output(a) -> None:
    if ENABLED:
        _relu_outputs[id(a)] = a


def is_relu_output(a) -> bool:
    return ENABLED and _relu_outputs.get(id(a)) is a


def mark_relu_applied(dx) -> None:
    if ENABLED:
        _relu_applied[id(dx)] = dx


def relu_already_applied(dy) -> bool:
    return ENABLED and _relu_applied.get(id(dy)) is dy
