"""Forward and backward over a graph of layers (model.py's non-linear case).

A graph is the model's layers in topological order plus ``inbound[i]``, the indices of
the layers feeding layer i (-1 = the model input). The forward runs the layers in that
order; the backward runs them in reverse, and where a tensor feeds several layers (a
fork) their gradients are summed into a buffer of the producer's context, never into a
buffer a layer owns (a layer may hand back its dy, or its own dx, and reads them again).

The linear model's optimisations apply where they cannot change what another layer sees,
that is where the producer has exactly ONE consumer: a relu fused into the layer before
it, a BatchNormalization folded into the conv before it (inference), the relu hand-off to
MaxPooling2D (layers/relu_handoff.py recognises arrays by identity, so a summed gradient
simply breaks the hand-off), and no backward below the layers with trainable weights.

Inference over big batches assigns each layer's buffers from a pool of arenas by
liveness: a tensor's arena is free again once its last consumer ran, so a residual
network at batch 1000 holds about three feature maps, not one per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .layers import relu_handoff


@dataclass(frozen=True)
class Plan:
    """What the runtime needs to know about a graph, computed once per build."""

    inbound: tuple[tuple[int, ...], ...]
    consumers: tuple[tuple[int, ...], ...]  # per layer: the layers reading its output
    last_use: tuple[int, ...]  # per layer: the last layer reading its output (itself for the output)
    merge: tuple[bool, ...]
    needs_grad: tuple[bool, ...]  # a trainable weight at or above this layer: its output gradient is used
    fused: frozenset = frozenset()  # relu_fusions (a single image's predict need not redo them)
    folds: dict | None = None  # bn_folds
    pooled: dict | None = None  # pooled_convs


def make_plan(layers, inbound) -> Plan:
    """The plan of a graph whose layers are built (model.build makes it)."""
    n = len(layers)
    inbound = tuple(tuple(ins) for ins in inbound)
    consumers: list[list[int]] = [[] for _ in range(n)]
    for i, ins in enumerate(inbound):
        for j in dict.fromkeys(ins):
            if j != -1:
                consumers[j].append(i)
    needs = []
    for i, layer in enumerate(layers):
        own = any(spec.trainable for spec in getattr(layer, "weight_specs", ()))
        needs.append(own or any(needs[j] for j in inbound[i] if j >= 0))
    plan = Plan(inbound, tuple(tuple(c) for c in consumers),
                tuple(max(c) if c else i for i, c in enumerate(consumers)),
                tuple(bool(getattr(layer, "merge", False)) for layer in layers), tuple(needs))
    # built layers: a BatchNormalization folds only once both it and its conv are built
    return replace(plan, fused=relu_fusions(layers, plan), folds=bn_folds(layers, plan),
                   pooled=pooled_convs(layers, plan))


def takes_pool(conv, pool) -> bool:
    """Whether a training step can run the max pool ``pool``, the only reader of ``conv``'s
    output, inside ``conv``'s backward (``Conv2D.backward_from_pool``: a relu conv on few
    channels) when nothing needs conv's input gradient; its forward too where
    ``conv.takes_pooled_forward(pool)``. Not with the relu hand-off off (tests compare)."""
    takes = getattr(conv, "takes_pooled_gradient", None)
    return (relu_handoff.ENABLED and takes is not None and hasattr(pool, "pooled_gradient")
            and bool(takes()))


def pooled_convs(layers, plan: Plan) -> dict:
    """{index of a conv that reads no layer needing a gradient: the max pool that is its
    only consumer and reads only it} (a network's first conv -> pool; ``takes_pool``
    decides, at run time, whether the pair runs as one)."""
    pairs = {}
    for i, layer in enumerate(layers):
        users = plan.consumers[i]
        if (len(users) == 1 and len(plan.inbound[users[0]]) == 1
                and not any(j >= 0 and plan.needs_grad[j] for j in plan.inbound[i])):
            pairs[i] = users[0]
    return pairs


def relu_fusions(layers, plan: Plan) -> frozenset:
    """Indices of the layers that apply the relu of the Activation('relu') that is their
    only consumer, and of those Activations (which then pass their input through)."""
    found = set()
    for i, layer in enumerate(layers):
        users = plan.consumers[i]
        if len(users) == 1 and getattr(layer, "absorbs_relu", False) and getattr(layers[users[0]], "is_relu", False):
            found.update((i, users[0]))
    return frozenset(found)


def bn_folds(layers, plan: Plan) -> dict:
    """{index of a conv: the BatchNormalization that is its only consumer and that
    inference folds into it}."""
    folds = {}
    for i, layer in enumerate(layers):
        users = plan.consumers[i]
        if len(users) == 1:
            bn = layers[users[0]]
            if getattr(bn, "folds_into", None) is not None and bn.folds_into(layer):
                folds[i] = bn
    return folds


def _inputs(plan: Plan, i: int, x, outs):
    ins = plan.inbound[i]
    if plan.merge[i]:
        return [x if j == -1 else outs[j] for j in ins]
    j = ins[0]
    return x if j == -1 else outs[j]


def forward(layers, plan: Plan, x, ctxs, training: bool, collect: list | None = None):
    """The output of the last layer; every layer's output appended to `collect` when
    given (then nothing is fused: each layer's own output is wanted)."""
    fused = plan.fused if collect is None else ()
    # a training step's first conv -> max pool in one pass (backward() then takes the
    # pooled path too); not when every layer's own output is wanted
    pooled = plan.pooled if training and collect is None and plan.pooled else {}
    outs: list = [None] * len(layers)
    done = set()
    for i, (layer, ctx) in enumerate(zip(layers, ctxs)):
        ctx.fuse_relu = i in fused
        if i in done:
            continue
        p = pooled.get(i)
        if p is not None and takes_pool(layer, layers[p]) and layer.takes_pooled_forward(layers[p]):
            outs[p] = layer.forward_into_pool(_inputs(plan, i, x, outs), ctx, layers[p], ctxs[p])
            done.add(p)
            continue
        outs[i] = layer.forward(_inputs(plan, i, x, outs), ctx, training)
        if collect is not None:
            collect.append(outs[i])
    return outs[-1]


def _memory_owner(a):
    return a if a.base is None else a.base


def forward_streaming(layers, plan: Plan, x, ctxs, arenas: list, workspace_factory):
    """Inference with each layer's buffers taken from an arena that holds no tensor still
    to be read (arenas grows as the graph needs; a chain needs two, a residual block
    three). A layer whose output is a view of an input (Flatten, a fused relu, inference
    Dropout) leaves the data in that input's arena, which then stays busy as long as
    either is needed."""
    fused, folds = plan.fused, plan.folds
    for ctx in ctxs:
        ctx.saved.clear()
    n = len(layers)
    outs: list = [None] * n
    where = [-1] * n  # arena of each layer's output (-1: the caller's x)
    live_until = list(plan.last_use)  # a tensor is needed until this layer ran
    live: dict[int, int] = {}  # producer -> arena, for tensors still needed
    x_owner = _memory_owner(x)
    for i, (layer, ctx) in enumerate(zip(layers, ctxs)):
        ctx.fuse_relu = i in fused
        ctx.fold_bn = folds.get(i)
        producer = plan.inbound[i][0]
        ctx.folded = not plan.merge[i] and producer >= 0 and folds.get(producer) is layer
        if ctx.fold_bn is not None:
            # the conv applies the BatchNormalization and that layer's fused relu
            ctx.fuse_relu = plan.consumers[i][0] in fused
        busy = set(live.values())
        use = next((a for a in range(len(arenas)) if a not in busy), None)
        if use is None:
            arenas.append(workspace_factory())
            use = len(arenas) - 1
        ctx.ws = arenas[use]
        y = layer.forward(_inputs(plan, i, x, outs), ctx, False)
        owner = _memory_owner(y)
        where[i] = use
        for j in plan.inbound[i]:
            if (x_owner if j == -1 else _memory_owner(outs[j])) is owner:
                where[i] = -1 if j == -1 else where[j]
                break
        outs[i] = y
        for j in dict.fromkeys(plan.inbound[i]):
            if j >= 0 and live_until[j] == i:
                live.pop(j, None)
                outs[j] = None
        if i < n - 1 and where[i] >= 0:
            live[i] = where[i]
    return outs[-1]


def backward(layers, plan: Plan, dy, ctxs, fused_last: bool, need_input_grad: bool = False):
    """Gradients of every layer for dy = d(loss)/d(output); the input gradient when
    need_input_grad (None otherwise). Layers whose output gradient no weight needs are
    skipped, unless the input gradient is wanted (saliency)."""
    n = len(layers)
    last = n - 1
    grads: list = [None] * n
    owned = [False] * n  # grads[j] is j's own summing buffer (may be written)
    grads[last] = dy
    input_grad = None
    input_owned = False
    needs = plan.needs_grad
    # a pool's backward done inside the conv before it (see forward())
    pools = {} if need_input_grad or not plan.pooled else {p: c for c, p in plan.pooled.items()
                                                          if takes_pool(layers[c], layers[p])}
    for i in range(last, -1, -1):
        g = grads[i]
        if g is None or not (need_input_grad or needs[i]):
            continue
        c = pools.get(i)
        if c is not None:
            from_pool = layers[i].pooled_gradient(g, ctxs[i])
            if from_pool is not None:  # the pool's backward and the conv's, in one pass
                layers[c].backward_from_pool(from_pool, ctxs[c])
                grads[i] = None
                continue
        ins = plan.inbound[i]
        need_dx = need_input_grad or any(j >= 0 and needs[j] for j in ins)
        out = layers[i].backward(g, ctxs[i], need_dx=need_dx, skip_activation=fused_last and i == last)
        grads[i] = None
        if not need_dx:
            continue
        dxs = out if plan.merge[i] else (out,)
        for j, dx in zip(ins, dxs):
            if dx is None:
                continue
            if j == -1:
                if not need_input_grad:
                    continue
                if input_grad is None:
                    input_grad = dx
                else:
                    if not input_owned:
                        acc = ctxs[0].ws.get("model.input_grad_sum", dx.shape, np.float32)
                        np.add(input_grad, dx, out=acc)
                        input_grad, input_owned = acc, True
                    else:
                        input_grad += dx
                continue
            if not (need_input_grad or needs[j]):
                continue
            if grads[j] is None:
                grads[j] = dx
            elif not owned[j]:
                acc = ctxs[j].ws.get("model.grad_sum", dx.shape, np.float32)
                np.add(grads[j], dx, out=acc)
                grads[j], owned[j] = acc, True
            else:
                grads[j] += dx
    return input_grad


__all__ = ["Plan", "make_plan", "relu_fusions", "bn_folds", "forward", "forward_streaming", "backward"]
