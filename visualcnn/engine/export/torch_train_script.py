"""The PyTorch folder's train.py and README.md (pytorch_folder.py writes them).

train.py reproduces VisualCNN's recipe with PyTorch's own tools: the optimizer with
Keras's settings (Adam and RMSprop epsilon 1e-7, RMSprop rho 0.9 with Keras's
sqrt(v + epsilon)), the learning-rate schedule with Keras's rate at every step (constant,
step, exponential, cosine), EarlyStopping and ReduceLROnPlateau with Keras's rules, the
project's data (MNIST, Fashion-MNIST or an image folder read with Pillow), cross-entropy from the
scores before the final softmax, the validation split as Keras takes it (the last
fraction), the seed; on CPU or GPU, and under `torchrun --nproc_per_node N` with
DistributedDataParallel (gloo on CPU, nccl on GPUs; a DistributedSampler shares out the
images; only rank 0 prints and saves). The MNIST reading, scaling, validation split and
options are script_parts.py's, the same text the Keras script uses.
"""

from __future__ import annotations

from . import script_parts

_OPTIMIZERS = {
    "adam": '''\
def make_optimizer(parameters, learning_rate):
    """Adam with Keras's defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7). Keras adds its
    epsilon to sqrt(v) before the bias correction, PyTorch after it: they differ only
    while sqrt(v) is as small as epsilon."""
    return torch.optim.Adam(parameters, lr=learning_rate, betas=(0.9, 0.999), eps=1e-7)
''',
    "sgd": '''\
def make_optimizer(parameters, learning_rate):
    """SGD with the recipe's momentum (Keras's SGD: the same steps at a constant rate)."""
    return torch.optim.SGD(parameters, lr=learning_rate, momentum=MOMENTUM, nesterov=NESTEROV)
''',
    "rmsprop": '''\
class KerasRMSprop(torch.optim.Optimizer):
    """Keras's RMSprop (rho 0.9, epsilon 1e-7, no momentum): v = rho*v + (1 - rho)*g^2,
    w -= lr * g / sqrt(v + epsilon). PyTorch's RMSprop divides by sqrt(v) + epsilon
    instead, which differs while v is small, so the Keras form is written out here."""

    def __init__(self, parameters, lr, rho=0.9, epsilon=1e-7):
        super().__init__(parameters, dict(lr=lr, rho=rho, epsilon=epsilon))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = self.state[p].setdefault("v", torch.zeros_like(p))
                v.mul_(group["rho"]).addcmul_(p.grad, p.grad, value=1 - group["rho"])
                p.sub_(group["lr"] * p.grad / (v + group["epsilon"]).sqrt())


def make_optimizer(parameters, learning_rate):
    return KerasRMSprop(parameters, lr=learning_rate)
''',
}

_TORCHVISION = '''\
def mnist_from_torchvision():
    """MNIST through torchvision's downloader (into a folder beside this script)."""
    from torchvision.datasets import MNIST

    root = Path(__file__).resolve().parent / "mnist_download"
    train, test = MNIST(root, train=True, download=True), MNIST(root, train=False, download=True)
    return (train.data.numpy(), train.targets.numpy()), (test.data.numpy(), test.targets.numpy())
'''

_LOSS_FROM_SCORES = '''\
def loss_and_scores(model, x, y):
    """The batch's loss and the class scores accuracy is read from. Cross-entropy is
    computed from the scores before the final softmax (forward(x, logits=True)): the
    stable form of Keras's cross-entropy on the probabilities."""
    scores = model(x, logits=True)
    return F.cross_entropy(scores, y), scores
'''

_LOSS_FROM_PROBABILITIES = {
    "sparse_categorical_crossentropy": "F.nll_loss(torch.log(p.clamp(1e-7, 1 - 1e-7)), y)",
    "categorical_crossentropy": "-(y * torch.log(p.clamp(1e-7, 1 - 1e-7))).sum(dim=1).mean()",
    "binary_crossentropy": "F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), y)",
    "mean_squared_error": "F.mse_loss(p, y)",
}


def _loss_source(loss: str, final_softmax: bool) -> str:
    if final_softmax and loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        return _LOSS_FROM_SCORES
    return f'''\
def loss_and_scores(model, x, y):
    """The batch's loss ({loss}, on the model's output as Keras computes it, probabilities
    clipped to [1e-7, 1 - 1e-7] where a logarithm is taken) and the output."""
    p = model(x)
    return {_LOSS_FROM_PROBABILITIES[loss]}, p
'''


_RATES = {
    "constant": ("The recipe keeps the learning rate at LEARNING_RATE.", "    return LEARNING_RATE\n"),
    "cosine": ("Keras's CosineDecay(LEARNING_RATE, decay_steps=total_steps): half a cosine from\n"
               "    LEARNING_RATE down to 0 over the whole run, in float32 as Keras computes it.",
               "    f32 = np.float32\n"
               "    done = f32(min(step, max(1, total_steps))) / f32(max(1, total_steps))\n"
               "    return float(f32(LEARNING_RATE) * (f32(0.5) * (f32(1.0) + np.cos(f32(math.pi) * done))))\n"),
    "exponential": ("Keras's ExponentialDecay(LEARNING_RATE, decay_steps=DECAY_EPOCHS epochs, DECAY_RATE):\n"
                    "    LEARNING_RATE * DECAY_RATE ** (step / decay_steps), in float32 as Keras computes it.",
                    "    decay_steps = np.float32(max(1, DECAY_EPOCHS * steps_per_epoch))\n"
                    "    return float(np.float32(LEARNING_RATE) * np.power(np.float32(DECAY_RATE), "
                    "np.float32(step) / decay_steps))\n"),
    "step": ("Keras's PiecewiseConstantDecay(*step_schedule(...)): values[k] while step is at most\n"
             "    boundaries[k], the last value after the last boundary.",
             "    boundaries, values = step_schedule(steps_per_epoch, total_steps)\n"
             "    for boundary, value in zip(boundaries, values):\n"
             "        if step <= boundary:\n"
             "            return value\n"
             "    return values[-1]\n"),
}


def _schedule_source(training) -> str:
    words, body = _RATES[training.schedule]
    text = f'''\
def learning_rate_at(step, steps_per_epoch, total_steps):
    """The rate of the step-th update (counted from 0 over the whole run). {words}"""
{body}

def set_learning_rate(optimizer, rate):
    """The rate every parameter group uses from the next optimizer.step() on."""
    for group in optimizer.param_groups:
        group["lr"] = rate
'''
    return (script_parts.step_schedule_source() + "\n\n" + text) if training.schedule == "step" else text


def _data_sources(data) -> list[str]:
    if data.source == "folder":
        return [script_parts.folder_loader_source(), script_parts.pil_folder_source()]
    if data.source == "fashion_mnist":
        return [script_parts.mnist_loader_source("fashion_from_torchvision()", "torchvision", "Fashion-MNIST"),
                _TORCHVISION.replace("mnist_from_torchvision", "fashion_from_torchvision")
                .replace("import MNIST", "import FashionMNIST").replace("MNIST(root", "FashionMNIST(root")
                .replace('"mnist_download"', '"fashion_mnist_download"').replace('"""MNIST through', '"""Fashion-MNIST through')]
    return [script_parts.mnist_loader_source("mnist_from_torchvision()", "torchvision"), _TORCHVISION]


def train_script(model, training, source, data=None) -> str:
    """train.py for the exported model (source: pytorch_folder.ModuleSource; data:
    script_data.ScriptData, None: MNIST)."""
    from .script_data import script_data

    data = data or script_data(model, None)
    callbacks = []
    if training.early_stopping or training.reduce_lr_on_plateau:
        callbacks.append(_WATCHER)  # what both callbacks share: has the watched value improved?
    if training.early_stopping:
        callbacks.append(_EARLY_STOPPING)
    if training.reduce_lr_on_plateau:
        callbacks.append(_REDUCE_LR)
    parts = [
        f'''"""Train {model.name} on {data.label} with PyTorch: the recipe VisualCNN exported.

    python train.py                        # on the GPU when there is one, else the CPU
    python train.py --device cpu --epochs 3 --save trained.safetensors
    torchrun --nproc_per_node 2 train.py   # DistributedDataParallel over 2 processes
                                           # (gloo on CPU, nccl on GPUs)

Training starts from initial.safetensors, the weights VisualCNN starts from with the
recipe's seed (Keras's initialisers); --from-trained starts from weights.safetensors.
--seed changes the shuffling, dropout and augmentation, not those starting weights.
--batch-size is the whole step's batch, as in VisualCNN: under torchrun each of the N
processes takes batch_size / N images of it. Prints each epoch's loss and accuracy (and
the validation's), then the test accuracy.
"""

import argparse
import gzip
import math
import os
import struct
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler, TensorDataset

from model import {source.class_name}

HERE = Path(__file__).resolve().parent
''',
        script_parts.recipe_source(training, model.input_shape, data),
        *_data_sources(data),
        script_parts.preprocess_source(),
        script_parts.arguments_source(),
        _OPTIMIZERS[training.optimizer],
        _schedule_source(training),
        *callbacks,
        _loss_source(training.loss, source.has_final_softmax),
        _MAIN.replace("{class_name}", source.class_name)
        .replace("load_mnist(args.data)", "load_folder(args.data)" if data.source == "folder" else "load_mnist(args.data)")
        .replace("    callbacks = []\n", "    callbacks = [" + ", ".join(
            (["EarlyStopping(MONITOR, EARLY_STOPPING_PATIENCE, RESTORE_BEST_WEIGHTS)"] if training.early_stopping
             else []) + (["ReduceLROnPlateau(MONITOR, REDUCE_LR_FACTOR, REDUCE_LR_PATIENCE, MIN_LR)"]
                         if training.reduce_lr_on_plateau else [])) + "]\n"),
    ]
    return "\n\n".join(p.strip("\n") + "\n" for p in parts)


_WATCHER = '''\
class Watcher:
    """Keras's monitor rule (mode="auto"): a loss improves by going down, an accuracy up, by
    more than min_delta; the first value always counts as an improvement."""

    def __init__(self, monitor, min_delta):
        self.monitor, self.min_delta = monitor, abs(min_delta)
        self.lower_is_better = monitor.removeprefix("val_") == "loss"
        self.best = None

    def improved(self, value):
        if self.best is None:
            return True
        if self.lower_is_better:
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best
'''

_EARLY_STOPPING = '''\
class EarlyStopping(Watcher):
    """keras.callbacks.EarlyStopping(monitor, patience, restore_best_weights) with Keras's
    rules (min_delta 0, no baseline): stop when `monitor` has not improved for `patience`
    epochs; with restore_best_weights, end with the weights of the best epoch."""

    def __init__(self, monitor, patience, restore_best_weights, min_delta=0.0):
        super().__init__(monitor, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.best_epoch, self.best_weights, self.wait = 0, None, 0

    def end_of_epoch(self, epoch, logs, net, optimizer, say):
        """True when training should stop."""
        value = logs.get(self.monitor)
        if value is None:
            say(f"EarlyStopping: {self.monitor} is not logged (no validation split?); ignored")
            return False
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = copy_weights(net), epoch  # the first epoch is the best so far
        self.wait += 1
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = copy_weights(net)
            return False
        if self.wait >= self.patience and epoch > 0:
            say(f"epoch {epoch + 1}: early stopping ({self.monitor} did not improve for {self.wait} epochs)")
            return True
        return False

    def end_of_training(self, net, say):
        if self.restore_best_weights and self.best_weights is not None:
            say(f"restoring the weights of the best epoch: {self.best_epoch + 1}")
            net.load_state_dict(self.best_weights)


def copy_weights(net):
    """Every weight and buffer (BatchNorm's moving statistics too, as Keras's get_weights)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
'''

_REDUCE_LR = '''\
class ReduceLROnPlateau(Watcher):
    """keras.callbacks.ReduceLROnPlateau(monitor, factor, patience, min_lr) with Keras's
    rules: when `monitor` has not improved by min_delta (1e-4) for `patience` epochs,
    multiply the rate by factor (never below min_lr), then wait `cooldown` epochs (0)."""

    def __init__(self, monitor, factor, patience, min_lr, min_delta=1e-4, cooldown=0):
        super().__init__(monitor, min_delta)
        self.factor, self.patience, self.min_lr, self.cooldown = factor, patience, min_lr, cooldown
        self.wait, self.cooldown_counter = 0, 0

    def end_of_epoch(self, epoch, logs, net, optimizer, say):
        value = logs.get(self.monitor)
        if value is None:
            say(f"ReduceLROnPlateau: {self.monitor} is not logged (no validation split?); ignored")
            return False
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            old = optimizer.param_groups[0]["lr"]
            if self.wait >= self.patience and old > np.float32(self.min_lr):
                new = float(np.float32(max(old * self.factor, self.min_lr)))  # Keras keeps the rate in float32
                set_learning_rate(optimizer, new)
                say(f"epoch {epoch + 1}: ReduceLROnPlateau reducing the learning rate to {new:.6g}")
                self.cooldown_counter, self.wait = self.cooldown, 0
        return False

    def end_of_training(self, net, say):
        pass
'''

_MAIN = '''\
def channels_first(x):
    """Images (N, H, W, C) as PyTorch takes them, (N, C, H, W); other shapes unchanged."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def tensors(images, labels):
    x = torch.from_numpy(channels_first(prepare_images(images, INPUT_SHAPE)))
    return x, torch.from_numpy(prepare_labels(labels, ONE_HOT_LABELS))


def correct(scores, y):
    """How many predictions (the largest score) match the labels (digits or one-hot rows)."""
    target = y.argmax(dim=1) if y.dim() == 2 else y
    return int((scores.argmax(dim=1) == target).sum())


@torch.no_grad()
def evaluate(model, x, y, device, batch_size=1000):
    """(mean loss, accuracy) of model (in eval mode: dropout off, BatchNorm's moving statistics)."""
    model.eval()
    total_loss, hits = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        loss, scores = loss_and_scores(model, xb, yb)
        total_loss += float(loss) * len(xb)
        hits += correct(scores, yb)
    return total_loss / len(x), hits / len(x)


def main(argv=None):
    parser = add_recipe_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--save", default=None, metavar="PATH",
                        help="write the trained weights here (safetensors; load_model(PATH) reads them)")
    parser.add_argument("--from-trained", action="store_true",
                        help="start from weights.safetensors instead of initial.safetensors")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per process (default: PyTorch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # DDP's note on a 1-channel conv's gradient strides (a size-1 axis has any stride) is harmless
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main_process = rank == 0

    def say(*text):
        if main_process:
            print(*text, flush=True)

    torch.manual_seed(args.seed)  # dropout and the augmentation layers
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    if args.limit:
        x_train, y_train, x_test, y_test = (a[:args.limit] for a in (x_train, y_train, x_test, y_test))
    x, y = tensors(x_train, y_train)
    (x, y), validation = split_validation(x, y, VALIDATION_SPLIT)
    x_test, y_test = tensors(x_test, y_test)

    net = {class_name}()
    start = HERE / ("weights.safetensors" if args.from_trained else "initial.safetensors")
    from safetensors.torch import load_file

    net.load_state_dict(load_file(str(start)))
    net.to(device)
    model = net
    if world > 1:
        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    data = TensorDataset(x, y)
    if world > 1:
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    else:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(args.seed))
    per_process = max(1, math.ceil(args.batch_size / world))
    # whole batches of indices: one tensor index per batch, no per-image collation
    loader = DataLoader(data, sampler=BatchSampler(sampler, per_process, drop_last=False), batch_size=None)
    optimizer = make_optimizer(model.parameters(), LEARNING_RATE)
    # the recipe's step count (VisualCNN's and Keras's batching), whatever the process count
    per_epoch = steps_per_epoch(len(x) + (len(validation[0]) if validation else 0), args.batch_size, VALIDATION_SPLIT)
    total_steps = per_epoch * args.epochs
    callbacks = []
    step = 0
    say(f"{len(x)} training images" + (f", {len(validation[0])} validation" if validation else "")
        + f", {len(x_test)} test; batch {args.batch_size}"
        + (f" ({per_process} per process x {world} processes)" if world > 1 else "")
        + f", {total_steps} steps on {device}")

    for epoch in range(args.epochs):
        if world > 1:
            sampler.set_epoch(epoch)
        model.train()
        began = time.perf_counter()
        seen = torch.zeros(3, dtype=torch.float64)  # loss sum, hits, images
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss, scores = loss_and_scores(model, xb, yb)
            loss.backward()
            if SCHEDULE != "constant":  # the schedule's rate for this very step, as Keras's optimizer takes it
                set_learning_rate(optimizer, learning_rate_at(step, per_epoch, total_steps))
            optimizer.step()
            step += 1
            seen += torch.tensor([float(loss.detach()) * len(xb), correct(scores.detach(), yb), len(xb)], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(seen)  # every process's share of the epoch
        logs = {"loss": float(seen[0] / seen[2]), "accuracy": float(seen[1] / seen[2])}
        if validation is not None:  # every process: the callbacks must decide alike
            logs["val_loss"], logs["val_accuracy"] = evaluate(net, *validation, device)
        say(f"epoch {epoch + 1}/{args.epochs} - {time.perf_counter() - began:.1f}s - "
            + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()) + f" - learning_rate: {optimizer.param_groups[0]['lr']:.6g}")
        stop = False
        for callback in callbacks:
            stop = callback.end_of_epoch(epoch, logs, net, optimizer, say) or stop
        if stop:
            break
    for callback in callbacks:
        callback.end_of_training(net, say)

    if main_process:
        test_loss, test_accuracy = evaluate(net, x_test, y_test, device)
        print(f"test loss: {test_loss:.4f} - test accuracy: {test_accuracy:.4f}", flush=True)
        if args.save:
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, args.save)
            print(f"saved the weights to {args.save}", flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''


def readme_text(model, training, source, trained: bool, data=None) -> str:
    """README.md of the folder: load, predict, train, torchrun."""
    shape = tuple(int(d) for d in model.input_shape)
    images = f"(N, {shape[2]}, {shape[0]}, {shape[1]})" if len(shape) == 3 else f"(N, {', '.join(map(str, shape))})"
    keras = f"(N, {', '.join(map(str, shape))})"
    weights = ("the trained weights" if trained else
               "freshly initialised weights (the model had not been trained when it was exported)")
    predict_shape = (f"""Keras and VisualCNN hold images as {keras} (channels last); this module takes them
channels first, {images}:

```python
import numpy as np
import torch
from model import load_model

model = load_model()                        # eval mode: dropout off, BatchNorm's moving statistics
images = np.zeros((5, {', '.join(map(str, shape))}), np.float32)   # pixel values / 255, as VisualCNN trains
x = torch.from_numpy(images).permute(0, 3, 1, 2)   # NHWC -> NCHW
with torch.no_grad():
    probabilities = model(x)                 # (5, classes), rows sum to 1
print(probabilities.argmax(dim=1))
```""" if len(shape) == 3 else f"""```python
import torch
from model import load_model

model = load_model()
with torch.no_grad():
    probabilities = model(torch.zeros(5, {', '.join(map(str, shape))}))
```""")
    from .script_data import script_data

    data = data or script_data(model, None)
    if data.source == "folder":
        data_words = ("The images are read from the class folders in `--data` (default: the folder VisualCNN\n"
                      "trained on) with Pillow (`pip install pillow`), resized as VisualCNN resizes them.")
    else:
        data_words = (f"{data.label} is read from the IDX files in `--data` (default: where VisualCNN read it on "
                      "the machine\nthat exported this folder), else downloaded with torchvision when it is installed.")
    return f"""# {model.name} for PyTorch

Exported from VisualCNN. The folder holds:

- `model.py`: the network as a PyTorch `nn.Module` ({source.class_name}), written out layer by layer;
  `load_model()` returns it with the weights in `weights.safetensors`, in eval mode.
- `weights.safetensors`: {weights}.
- `initial.safetensors`: the weights VisualCNN starts training from (the recipe's seed), where `train.py` starts.
- `train.py`: the training recipe ({training.optimizer}, learning rate {training.learning_rate:g}{"" if training.schedule == "constant" else f", {training.schedule} schedule"}{", early stopping" if training.early_stopping else ""}{", reduce-on-plateau" if training.reduce_lr_on_plateau else ""},
  batch {training.batch_size}, {training.epochs} epoch{"s" if training.epochs != 1 else ""}, {training.loss}).

Needs `torch`, `numpy` and `safetensors` (`pip install torch numpy safetensors`).

## Predict

{predict_shape}

The model returns probabilities (its final softmax included), as VisualCNN's predict does;
`model(x, logits=True)` returns the scores before the softmax.

## Train

```
python train.py                                  # GPU if there is one, else CPU
python train.py --device cpu --epochs 3 --save trained.safetensors
python train.py --limit 2000 --epochs 1          # a quick check on 2,000 images
```

{data_words}
`--from-trained` continues from `weights.safetensors`. Load saved weights with
`load_model("trained.safetensors")`.

## Several processes or GPUs

```
torchrun --nproc_per_node 2 train.py             # 2 processes on this machine (CPU: gloo)
torchrun --nproc_per_node 4 train.py --device cuda   # 4 GPUs (nccl)
```

Each process trains on its share of every batch (DistributedDataParallel with a
DistributedSampler); `--batch-size` stays the whole batch, so the recipe is unchanged.
Only the first process prints and saves. Across machines, give torchrun `--nnodes`,
`--node_rank` and `--master_addr` as its documentation describes.
"""
