"""The training time machine (issue 15 item 6): copies of the weights at chosen moments of
a run, kept within a memory cap, and a model restored to any of them for replay.

Which moments (plan_snapshots):
  - before training (epoch 0): the random filters and a near-uniform guess, the baseline
    every later moment is compared with;
  - inside the FIRST epoch, after 1, 10, 50 and 200 batches and half-way: on MNIST most of
    the learning happens here. Measured in the window (seed CNN, Adam 0.001, batch 64, all
    60,000 images, accuracy on the first 2,000 test images): start 10.7%, batch 1 18.4%,
    batch 10 58.0%, batch 50 84.8%, batch 200 93.5%, mid-epoch (469) 96.0%, epoch 1 97.2%,
    epoch 2 98.1%, epoch 3 98.5%. So: one step changes little (the filters barely move);
    10 and 50 catch the steep fall of the loss and the first stroke detectors; 200 and
    mid-epoch show the curve flattening;
  - at the end of EVERY epoch: the slow gains (and, on small data, overfitting) afterwards.
Later epochs get no in-epoch points: little visible changes inside them.

Memory (estimated before it is spent, like engine/memory.py): one moment costs the bytes of
all the weights. A plan that would pass the cap is thinned before the run: in-epoch points
go first (least telling first), then epoch ends evenly (the first and the last epoch and
the start always stay while anything fits). A continued run (Continue training) appends
its epochs to the same timeline; if the cap is reached, the older in-epoch points and
every other old epoch end make room. The store never holds more than its cap.

Not saved with the project: a moment is a full copy of the weights (the seed CNN's: 476 KiB
each, 4.2 MiB for the nine moments of a 3-epoch run; its project file with the weights is
0.65 MB, so it would grow ~9-fold), and the timeline is a replay of this session's runs; the
project keeps the final weights, the resume state and the run history.

    plan = store.plan_run(batches=938, first_epoch=1, last_epoch=3, snapshot_bytes=weights_nbytes(model))
    if plan.wants(epoch, batch): store.add(Moment(epoch, batch, 938, weights_of(model)))
    clone = model_at(model, store.moments[2])  # a separate model with that moment's weights
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .memory import available_memory_bytes, format_bytes

IN_EPOCH_BATCHES = (1, 10, 50, 200)  # batches into the first epoch (plus half-way)
# The in-epoch points in the order they are KEPT when memory is short (most telling first).
IN_EPOCH_PRIORITY = (50, "mid", 10, 200, 1)
CAP_BYTES = 256 * 2**20  # at most this much for the whole timeline...
CAP_FRACTION = 8  # ...and at most 1/8 of the memory available when the first run starts
EVALUATION_IMAGES = 2000  # the confusion matrix at a moment: the first 2,000 test images


def default_cap_bytes(available: int | None = None) -> int:
    available = available_memory_bytes() if available is None else available
    return int(min(CAP_BYTES, available // CAP_FRACTION))


def weights_of(model) -> dict:
    """Copies of every layer's weights: layer name -> list of arrays (Keras order)."""
    return {layer.name: [np.array(w, copy=True) for w in getattr(layer, "weights", [])] for layer in model.layers}


def weights_nbytes(model_or_weights) -> int:
    """What one moment of this model costs (the model must be built)."""
    if isinstance(model_or_weights, dict):
        return int(sum(np.asarray(w).nbytes for arrays in model_or_weights.values() for w in arrays))
    return int(sum(np.asarray(w).nbytes for layer in model_or_weights.layers
                   for w in getattr(layer, "weights", [])))


@dataclass(frozen=True, eq=False)  # compared by identity: weights are arrays
class Moment:
    """The weights after `batch` batches of epoch `epoch` (epoch 0, batch 0: before training)."""

    epoch: int
    batch: int
    batches: int  # batches per epoch in the run that recorded it
    weights: dict  # layer name -> list of arrays (copies, never the live ones)

    @property
    def key(self) -> tuple[int, int]:
        return (self.epoch, self.batch)

    @property
    def step(self) -> int:
        """Optimizer steps done at this moment, counted from the start of the timeline."""
        return 0 if self.epoch == 0 else (self.epoch - 1) * self.batches + self.batch

    @property
    def is_epoch_end(self) -> bool:
        return self.epoch > 0 and self.batch == self.batches

    @property
    def nbytes(self) -> int:
        return weights_nbytes(self.weights)

    @property
    def label(self) -> str:
        if self.epoch == 0:
            return "before training (random weights)"
        if self.is_epoch_end:
            return f"after epoch {self.epoch}"
        return f"epoch {self.epoch}, after batch {self.batch:,} of {self.batches:,}"

    @property
    def short_label(self) -> str:
        if self.epoch == 0:
            return "start"
        return f"epoch {self.epoch}" if self.is_epoch_end else f"batch {self.batch:,}"


@dataclass(frozen=True)
class SnapshotPlan:
    """The (epoch, batch) moments one run records, decided before it starts."""

    points: tuple  # sorted (epoch, batch) pairs
    snapshot_bytes: int
    cap_bytes: int
    note: str = ""  # one line when points were thinned or dropped (what and why), else ""

    def wants(self, epoch: int, batch: int) -> bool:
        return (epoch, batch) in self._set

    @property
    def _set(self) -> frozenset:
        cached = self.__dict__.get("_points_set")
        if cached is None:
            cached = frozenset(self.points)
            object.__setattr__(self, "_points_set", cached)
        return cached

    @property
    def planned_bytes(self) -> int:
        return len(self.points) * self.snapshot_bytes


def _spread(items: list) -> list:
    """items reordered so that any prefix is spread evenly over them (middle, quarters, ...)."""
    order, seen = [], set()
    spans = [(0, len(items) - 1)]
    while spans:
        lo, hi = spans.pop(0)
        if lo > hi:
            continue
        mid = (lo + hi) // 2
        if mid not in seen:
            seen.add(mid)
            order.append(items[mid])
        spans += [(lo, mid - 1), (mid + 1, hi)]
    return order


def in_epoch_batches(batches: int) -> dict:
    """The first epoch's inner points that exist for this many batches: name -> batch."""
    points = {b: b for b in IN_EPOCH_BATCHES if b < batches}
    mid = batches // 2
    if 1 <= mid < batches and mid not in points.values():
        points["mid"] = mid
    return points


def plan_snapshots(batches: int, first_epoch: int, last_epoch: int, snapshot_bytes: int, cap_bytes: int,
                   with_start: bool = True) -> SnapshotPlan:
    """The moments of a run training epochs first_epoch..last_epoch (1-based, inclusive) of
    `batches` batches each, within cap_bytes (what the timeline may still use).

    Kept in this order until the budget is spent: the last epoch's end, the start, the first
    epoch's end, the other epoch ends spread evenly, then the first epoch's inner points
    (IN_EPOCH_PRIORITY). Inner points only when first_epoch is 1 (a fresh run)."""
    if batches < 1 or first_epoch < 1 or last_epoch < first_epoch:
        raise ValueError(f"a run needs at least one batch and one epoch, received batches={batches}, "
                         f"epochs {first_epoch}..{last_epoch}")
    snapshot_bytes = max(1, int(snapshot_bytes))
    ends = [(e, batches) for e in range(first_epoch, last_epoch + 1)]
    inner = []
    if first_epoch == 1:
        named = in_epoch_batches(batches)
        inner = [(1, named[name]) for name in IN_EPOCH_PRIORITY if name in named]
    ranked = [ends[-1]] + ([(0, 0)] if with_start else []) + ([ends[0]] if len(ends) > 1 else [])
    ranked += _spread(ends[1:-1]) + inner
    budget = max(0, int(cap_bytes) // snapshot_bytes)
    kept = ranked[:budget]
    note = ""
    if len(kept) < len(ranked):
        each, cap = format_bytes(snapshot_bytes), format_bytes(max(0, int(cap_bytes)))
        if not kept:
            note = (f"No time machine for this run: one snapshot of the weights takes {each}, more than the "
                    f"{cap} it may use.")
        else:
            note = (f"Time machine thinned to {len(kept)} of {len(ranked)} moments: each snapshot takes {each} "
                    f"and the timeline may use {cap}.")
    return SnapshotPlan(tuple(sorted(kept)), snapshot_bytes, int(cap_bytes), note)


class SnapshotStore:
    """The timeline: moments in time order, never more than cap_bytes of weights.

    Used from one thread (the window's): the training thread hands over copies."""

    def __init__(self, cap_bytes: int | None = None):
        self.cap_bytes = default_cap_bytes() if cap_bytes is None else int(cap_bytes)
        self.moments: list[Moment] = []

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.moments)

    def clear(self) -> None:
        self.moments = []

    def __len__(self) -> int:
        return len(self.moments)

    def find(self, key) -> Moment | None:
        return next((m for m in self.moments if m.key == tuple(key)), None)

    def plan_run(self, batches: int, first_epoch: int, last_epoch: int, snapshot_bytes: int,
                 fresh: bool = True, with_start: bool | None = None) -> SnapshotPlan:
        """A fresh run empties the timeline; a continued one appends, making room first by
        thinning the old moments when the new epoch ends would not fit. with_start (default:
        fresh): the weights before the run are the untrained ones, worth a moment."""
        if fresh:
            self.clear()
        elif self.moments and self.moments[-1].nbytes != snapshot_bytes:
            self.clear()  # another network: its moments cannot share one slider
        new = last_epoch - first_epoch + 1
        self._make_room(new * max(1, int(snapshot_bytes)))
        return plan_snapshots(batches, first_epoch, last_epoch, snapshot_bytes, self.cap_bytes - self.nbytes,
                              with_start=fresh if with_start is None else with_start)

    def _make_room(self, wanted: int) -> None:
        """Drop old moments until `wanted` more bytes fit: inner points first (least telling
        first), then every other epoch end (never the start, the first or the newest)."""
        def free() -> int:
            return self.cap_bytes - self.nbytes

        rank = {name: i for i, name in enumerate(IN_EPOCH_PRIORITY)}
        while free() < wanted:
            inner = [m for m in self.moments if m.epoch > 0 and not m.is_epoch_end]
            if inner:
                named = {v: k for k, v in in_epoch_batches(inner[0].batches).items()}
                self.moments.remove(max(inner, key=lambda m: rank.get(named.get(m.batch), len(rank))))
                continue
            ends = [m for m in self.moments if m.is_epoch_end]
            middle = ends[1:-1]
            if not middle:
                return  # nothing more to give up: the plan drops new points instead
            for m in middle[::2]:
                self.moments.remove(m)

    def add(self, moment: Moment) -> bool:
        """Keep a moment (replacing one at the same time); False, and nothing kept, if it
        would pass the cap."""
        old = self.find(moment.key)
        used = self.nbytes - (old.nbytes if old is not None else 0)
        if used + moment.nbytes > self.cap_bytes:
            return False
        if old is not None:
            self.moments.remove(old)
        self.moments.append(moment)
        self.moments.sort(key=lambda m: (m.epoch, m.batch))
        return True

    def usage_text(self) -> str:
        return (f"{len(self.moments)} moments, {format_bytes(self.nbytes)} of the "
                f"{format_bytes(self.cap_bytes)} the time machine may use")


# --- replay ------------------------------------------------------------------------------

def model_at(model, moment: Moment):
    """A separate model with the structure of `model` (a model, or its to_json() text) and
    the weights of `moment`. Never the model a run trains: replaying must not disturb it."""
    from .model_io import model_from_json

    clone = model_from_json(model if isinstance(model, str) else model.to_json())
    clone.set_weights([np.array(w) for layer in clone.layers for w in moment.weights.get(layer.name, [])])
    return clone


@dataclass(frozen=True)
class MomentEvaluation:
    """A moment's test results on `count` test images."""

    matrix: np.ndarray  # (classes, classes): rows true class, columns predicted
    accuracy: float
    loss: float
    count: int
    total: int  # test images available (count < total: a subset, say so)

    @property
    def subset_text(self) -> str:
        return (f"the first {self.count:,} of the {self.total:,} test images" if self.count < self.total
                else f"all {self.total:,} test images")


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def evaluate_moment(model, moment: Moment, x_test: np.ndarray, y_test: np.ndarray, classes: int | None = None,
                    images: int = EVALUATION_IMAGES, batch_size: int = 250,
                    total: int | None = None, cancel=None) -> MomentEvaluation | None:
    """The confusion matrix, accuracy and loss of `moment` on the first `images` test images
    (the same images for every moment, so moments compare). total: the size of the whole
    test set when x_test / y_test are already its first images (for the words). cancel: a
    threading.Event read between batches (None returned when set: the window is closing)."""
    count = min(int(images), len(y_test))
    total = len(y_test) if total is None else max(int(total), len(y_test))
    labels = np.asarray(y_test[:count], np.int64)
    clone = model_at(model, moment)
    parts = []
    for start in range(0, count, batch_size):
        if cancel is not None and cancel.is_set():
            return None
        parts.append(clone.predict(x_test[start:min(start + batch_size, count)], batch_size=batch_size))
    probabilities = np.concatenate(parts)
    classes = int(classes or probabilities.shape[1])
    predicted = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(count), labels], 1e-7, 1.0)
    return MomentEvaluation(confusion(labels, predicted, classes), float(np.mean(predicted == labels)),
                            float(-np.mean(np.log(picked))), count, total)


@dataclass(frozen=True)
class ProbeAtMoment:
    """One image seen by the network at a moment: its feature maps, answer and saliency."""

    activations: dict  # layer name -> (1, ...) output for the probe
    probabilities: np.ndarray  # (classes,)
    saliency: np.ndarray  # (H, W): |d top score / d pixel|, the largest over the channels


def probe_moment(model, moment: Moment, image: np.ndarray) -> ProbeAtMoment:
    """The probe image through the network as it was at `moment` (one image: quick)."""
    clone = model_at(model, moment)
    x = np.asarray(image, np.float32).reshape(1, *clone.input_shape)
    activations = clone.activations(x)
    probabilities = np.asarray(list(activations.values())[-1][0], float)
    gradient = clone.input_gradients(x, int(np.argmax(probabilities)))[0]
    return ProbeAtMoment(activations, probabilities, np.abs(np.asarray(gradient, float)).max(axis=-1))
