"""Memory known before it is spent: what a model will allocate, priced from its shapes.

Pure arithmetic over the analysis report (no arrays, no numba), so the builder window can
show it on every edit and the engine can refuse a model that cannot fit *before*
allocating anything: Dense(1_000_000) after a 26x26x32 feature map asks for 86 GB of
weights, and numpy would otherwise try (and the OS kill the process, or swap for minutes).

Every value is float32 (4 bytes), as the engine stores them. Each layer prices its own
buffers (Layer.buffer_values / workspace_values); this module adds the model-wide parts:
gradients, optimizer slots, the batch being trained.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

FLOAT = 4  # bytes per float32 value
GIB = 1024 ** 3
HEADROOM = 0.9  # a model may use at most this fraction of the memory available

# Optimizer state per trainable value (Keras's slots): Adam keeps m and v; RMSprop v
# (and a momentum slot when momentum > 0); SGD a velocity only with momentum.
def optimizer_slots(optimizer: str = "adam", momentum: float = 0.0) -> int:
    name = (optimizer or "adam").lower()
    if name == "adam":
        return 2
    if name == "rmsprop":
        return 1 + (1 if momentum > 0 else 0)
    if name == "sgd":
        return 1 if momentum > 0 else 0
    return 2  # unknown: price it like Adam, the most expensive


class MemoryLimitError(ValueError):
    """The model would need more memory than this machine can give."""


@dataclass(frozen=True)
class LayerMemory:
    """One block's memory. activation_bytes: its output for the whole batch (float32).
    training_bytes: everything the block holds while training (weights, gradients,
    optimizer slots, forward and backward buffers, kernel scratch)."""

    name: str
    weight_bytes: int
    activation_bytes: int
    training_bytes: int = 0
    workspace_bytes: int = 0
    class_name: str = ""
    knob: str | None = None  # the argument that makes it smaller: "units", "filters", ...
    reduce: str | None = None  # what to shrink, in words: "dense's units"


@dataclass(frozen=True)
class MemoryEstimate:
    layers: tuple[LayerMemory, ...]
    weight_bytes: int
    training_peak_bytes: int
    inference_peak_bytes: int
    batch_size: int
    optimizer: str = "adam"

    @property
    def activation_bytes(self) -> int:
        return sum(layer.activation_bytes for layer in self.layers)

    def biggest(self, training: bool = True) -> LayerMemory | None:
        """The layer to shrink first: the one whose own weights and output cost the most.

        Its output, not its buffers: a MaxPooling2D after a wide conv holds the conv-sized
        input gradient, but the conv's output is what a student can make smaller.
        Training keeps each output about three times (the value, its gradient, the next
        layer's copy) and each weight 2 + slots times (gradient, undo copy, optimizer)."""
        if not self.layers:
            return None
        if training:
            slots = optimizer_slots(self.optimizer)
            return max(self.layers, key=lambda m: m.weight_bytes * (2 + slots) + 3 * m.activation_bytes)
        return max(self.layers, key=lambda m: m.weight_bytes + m.activation_bytes)


def _threads() -> int:
    """How many per-thread scratch slots the kernels keep (numba's thread count).

    numba is imported only when it already is (pricing a model must stay instant)."""
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            return max(1, int(numba.config.NUMBA_NUM_THREADS))
        except Exception:  # noqa: BLE001 - any oddity: fall back to the core count
            pass
    return max(1, os.cpu_count() or 1)


def _knob(layer) -> str | None:
    config = getattr(layer, "config", {})
    for arg in ("units", "filters", "depth_multiplier"):
        if arg in config:
            return arg
    return None


def _reduce(name: str, layer, input_shape, producer: str | None) -> str | None:
    """What to shrink to make this layer smaller, in the words a student acts on.
    producer: the same for the last layer before it that sets the size (its filters or
    units), which is what makes a pooling, Flatten or Dropout layer big."""
    knob = _knob(layer)
    if knob == "units" and input_shape is not None and input_shape[-1] > layer.config["units"]:
        # Dense(10) after a huge Flatten: its units are not the problem, its input is.
        return f"the size of {name}'s input (fewer filters, or pooling before Flatten)"
    return f"{name}'s {knob}" if knob else producer


def _folded_relu(before, layer) -> bool:
    """An Activation('relu') that the model folds into the layer before (model._forward);
    `before` is None unless that layer feeds only this one."""
    return (before is not None and bool(getattr(before, "absorbs_relu", False))
            and bool(getattr(layer, "is_relu", False)))


def _sole_links(report) -> tuple[list, list]:
    """(producer, follower) per row: the layer feeding it when that layer feeds only it,
    and the layer it feeds when that is its only consumer; None otherwise. The model's
    fusions apply only there (graph_run.py); for a plain stack these are the neighbours."""
    inbound = [row.inbound for row in report.rows]
    consumers: dict[int, list[int]] = {}
    for i, ins in enumerate(inbound):
        for j in dict.fromkeys(ins):
            consumers.setdefault(j, []).append(i)
    rows = report.rows
    producer, follower = [], []
    for i, ins in enumerate(inbound):
        j = ins[0] if len(ins) == 1 else -1
        producer.append(rows[j].layer if j >= 0 and consumers.get(j) == [i] else None)
        users = consumers.get(i, [])
        follower.append(rows[users[0]].layer if len(users) == 1 and len(inbound[users[0]]) == 1 else None)
    return producer, follower


def _relu_handed_off(layer, following) -> bool:
    """A conv with a fused relu followed by MaxPooling2D skips its relu backward pass."""
    return (following is not None and getattr(layer, "family", "") == "convolution"
            and layer.config.get("activation") == "relu" and following.class_name == "MaxPooling2D")


def _first_trainable(report) -> int | None:
    """The row of the first layer with trainable weights (the one whose input needs no
    gradient), or None when a row before it has an error."""
    for i, row in enumerate(report.rows):
        if row.inference is None:
            return None
        if any(spec.trainable for spec in row.inference.weights):
            return i
    return None


def _first_conv_pool(report, follower, first) -> tuple[int, bool, bool] | None:
    """(row, forward, backward) of a first conv (row ``first``, ``_first_trainable``) that
    runs the max pool after it inside its own passes in a training step (model._first_conv_pool,
    Conv2D.pool_takes_over), or None."""
    if first is None:
        return None
    row = report.rows[first]
    takes = getattr(row.layer, "pool_takes_over", None)
    if takes is None or follower[first] is None:
        return None
    forward, backward = takes(row.input_shape, row.inference.output_shape, follower[first])
    return (first, forward, backward) if backward else None


def _first_conv_masks_relu(report, follower, first) -> bool:
    """Whether the first conv (row ``first``) has its weight gradient apply its relu's
    derivative itself (Conv2D.masks_relu_in_gradient), with no max pool after it to do so:
    it never allocates its relu's gradient."""
    if first is None:
        return False
    row = report.rows[first]
    masks = getattr(row.layer, "relu_masked_in_gradient", None)
    return masks is not None and not _relu_handed_off(row.layer, follower[first]) and masks(row.input_shape)


def estimate_memory(report, batch_size: int, *, optimizer: str = "adam", momentum: float = 0.0,
                    threads: int | None = None) -> MemoryEstimate:
    """Price every layer of a PipelineReport at batch_size (rows with an error count 0)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}")
    threads = threads or _threads()
    slots = optimizer_slots(optimizer, momentum)
    rows = []
    weights = trainable = train_buffers = infer_buffers = workspaces = 0
    producer = None
    sole_producer, sole_follower = _sole_links(report)
    first_trainable = _first_trainable(report)
    first = _first_conv_pool(report, sole_follower, first_trainable)
    masked = first_trainable if _first_conv_masks_relu(report, sole_follower, first_trainable) else None
    consumers: dict[int, int] = {}
    for ins in report.inbound:
        for j in set(ins):
            consumers[j] = consumers.get(j, 0) + 1
    for i, row in enumerate(report.rows):
        inference = row.inference
        layer, before = row.layer, sole_producer[i]
        if inference is None:
            rows.append(LayerMemory(row.name, 0, 0, 0, 0, layer.class_name, _knob(layer)))
            continue
        in_shape, out_shape = row.input_shape, inference.output_shape
        w_values = sum(spec.size for spec in inference.weights)
        t_values = sum(spec.size for spec in inference.weights if spec.trainable)
        out_values = math.prod(out_shape[1:])
        if _folded_relu(before, layer):
            train_values = infer_values = 0  # applied by the layer before, in its own buffers
        else:
            if getattr(layer, "merge", False):
                count = len(row.inbound)
                train_values = layer.buffer_values(in_shape, out_shape, True, input_count=count)
                infer_values = layer.buffer_values(in_shape, out_shape, False, input_count=count)
            else:
                train_values = layer.buffer_values(in_shape, out_shape, True)
                infer_values = layer.buffer_values(in_shape, out_shape, False)
            if _relu_handed_off(layer, sole_follower[i]) or i == masked:
                # no dz: the pool applies relu' (layers/relu_handoff.py), or the weight gradient
                train_values -= out_values
            if first is not None and i == first[0] and first[1]:
                train_values -= out_values  # no output: the conv hands the pool its windows
            if first is not None and i == first[0] + 1 and first[2]:
                train_values -= math.prod(in_shape[1:])  # no dx: the conv reads the pool's gradient
        if consumers.get(i, 0) > 1:
            # a fork: the gradients of its consumers are summed in a buffer of its own
            train_values += out_values
        ws_values = layer.workspace_values(in_shape, out_shape, batch_size, threads)
        layer_training = (w_values + t_values * (2 + slots) + train_values * batch_size + ws_values) * FLOAT
        rows.append(LayerMemory(row.name, w_values * FLOAT, out_values * batch_size * FLOAT, layer_training,
                                ws_values * FLOAT, layer.class_name, _knob(layer),
                                _reduce(row.name, layer, in_shape, producer)))
        if _knob(layer):
            producer = f"{row.name}'s {_knob(layer)}"
        weights += w_values
        trainable += t_values
        train_buffers += train_values
        infer_buffers += infer_values
        workspaces += ws_values
    batch_values = math.prod(report.input_shape) + (math.prod(report.output_shape[1:])
                                                    if report.ok and report.output_shape else 0)
    # trainable * (2 + slots): the gradient, the copy kept to undo a step that overflows
    # (model._train_step) and the optimizer's slots.
    training = weights + trainable * (2 + slots) + (train_buffers + batch_values) * batch_size + workspaces
    inference = weights + (infer_buffers + batch_values) * batch_size + workspaces
    return MemoryEstimate(tuple(rows), weights * FLOAT, training * FLOAT, inference * FLOAT, batch_size,
                          (optimizer or "adam").lower())


# --- what the machine can give ----------------------------------------------------------


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2, then v1), or None."""
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        used = _read_int("/sys/fs/cgroup/memory.current") or 0
        return max(0, limit - used)
    limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if limit is not None and limit < 1 << 60:  # v1 reports "no limit" as a huge number
        used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes") or 0
        return max(0, limit - used)
    return None


def _rlimit_available() -> int | None:
    """Room left under `ulimit -v` (RLIMIT_AS), or None when there is no such limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


def available_memory_bytes() -> int:
    """What this process can still allocate: the smaller of the kernel's MemAvailable and
    the room under a cgroup limit. VISUALCNN_MEMORY_LIMIT (bytes) overrides it, for tests
    and for teachers who want to keep a margin."""
    override = os.environ.get("VISUALCNN_MEMORY_LIMIT", "").strip()
    if override:
        try:
            return max(0, int(float(override)))
        except ValueError:
            pass
    candidates = [v for v in (_meminfo_available(), _cgroup_available(), _rlimit_available()) if v is not None]
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # unknown platform: do not refuse anything
    return min(candidates)


def format_bytes(n: int | float) -> str:
    """'512 B', '1.2 MiB', '25.3 GiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def memory_problem(estimate: MemoryEstimate, training: bool = True, available: int | None = None,
                   already_allocated: int = 0) -> str | None:
    """The one-line refusal check_memory raises, or None when the model fits.

    already_allocated: bytes of the estimate this process holds already (the weights of a
    built model), which MemAvailable no longer counts."""
    need = estimate.training_peak_bytes if training else estimate.inference_peak_bytes
    room = (available_memory_bytes() if available is None else available) + already_allocated
    # Leave a margin: the estimate is of the engine's arrays only, and a machine swapping
    # for its last free megabytes freezes the whole desktop in front of the class.
    usable = int(room * HEADROOM)
    if need <= usable:
        return None
    if training:
        what = "Training this model"
    elif estimate.batch_size == 1:
        what = "Building this model"
    else:
        what = f"Running this model on batches of {estimate.batch_size}"
    if need > room:
        have = f"this machine has {format_bytes(room)} available"
    else:
        have = f"this machine can spare {format_bytes(usable)} of the {format_bytes(room)} available"
    big = estimate.biggest(training)
    detail, advice = "", "make the layers smaller" if estimate.batch_size == 1 else "reduce the batch size"
    if big is not None:
        parts = []
        if big.weight_bytes:
            parts.append(f"{format_bytes(big.weight_bytes)} of weights")
        if big.activation_bytes:
            parts.append(f"{format_bytes(big.activation_bytes)} of activations at batch {estimate.batch_size}")
        detail = f" ({big.name}: {', '.join(parts)})" if parts else ""
        weight_share = big.weight_bytes * ((2 + optimizer_slots(estimate.optimizer)) if training else 1)
        if big.reduce and (weight_share * 2 >= need or estimate.batch_size == 1):
            advice = f"reduce {big.reduce}"  # a smaller batch would not help
        elif big.reduce:
            advice = f"reduce the batch size or {big.reduce}"
    return f"{what} needs about {format_bytes(need)}{detail} but {have}: {advice}"


def check_memory(estimate: MemoryEstimate, training: bool = True, *, available: int | None = None,
                 already_allocated: int = 0) -> None:
    """Raise MemoryLimitError (a ValueError) naming the numbers when the estimate cannot fit."""
    problem = memory_problem(estimate, training, available, already_allocated)
    if problem:
        raise MemoryLimitError(problem)


__all__ = ["MemoryLimitError", "LayerMemory", "MemoryEstimate", "estimate_memory", "available_memory_bytes",
           "check_memory", "memory_problem", "format_bytes", "optimizer_slots"]
