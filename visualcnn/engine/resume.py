"""The project's "resume" section: everything an interrupted run needs to go on exactly as
if it had never stopped (engine/project_sections.py lists the sections).

    section = capture(model, run, config)           # after a run (the CLI's --save, the window)
    prepared = prepare_run(model, config, data, resume=section)   # weights already loaded

A continued run gives bit-identical weights to an uninterrupted run of the same total
length (tests/test_cli_resume.py) because it restores, besides the weights the project
already holds:
- the optimizer: its slots (Adam's m and v, momentum...), its step count (Adam's bias
  correction and every schedule read it) and its learning rate (ReduceLROnPlateau or the
  window's box may have changed it);
- where the run stood: epochs done and batches done in an unfinished epoch, with that
  epoch's running sums (its mean loss comes out the same);
- the data order: the shuffling generator's state. The order itself is not stored (60,000
  numbers): the engine replays the shuffles from the seed, cheaply, and checks that the
  generator lands on the stored state, so different data or settings are refused;
- every random layer's generator (Dropout, RandomTranslation...);
- the callbacks' counters (EarlyStopping's wait and best...);
- a digest of the weights it belongs to, so a state is never applied to other weights.

Arrays are stored as base64 little-endian float32 like the weights; the 128-bit generator
states as decimal strings (JSON readers other than Python's lose big integers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import numpy as np

from .layers import ConfigError

VERSION = 1


class ResumeError(ConfigError):
    """The saved training state cannot continue this run; the message says what to do."""


# --- arrays and generator states as JSON ----------------------------------------------

def encode_arrays(arrays) -> list:
    return [{"shape": list(np.shape(a)), "data": base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes())
             .decode("ascii")} for a in arrays]


def decode_arrays(entries) -> list[np.ndarray]:
    if not isinstance(entries, list):
        raise ResumeError("resume: arrays must be a list")
    arrays = []
    for entry in entries:
        try:
            shape = [int(d) for d in entry["shape"]]
            raw = base64.b64decode(entry["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ResumeError("resume: an array entry is damaged (needs shape and base64 data)") from None
        if len(raw) != 4 * int(np.prod(shape, dtype=np.int64)):
            raise ResumeError(f"resume: an array of shape {shape} holds {len(raw) // 4} numbers")
        arrays.append(np.frombuffer(raw, "<f4").astype(np.float32).reshape(shape))
    return arrays


def _rng_state(generator: np.random.Generator) -> dict:
    return _stringify(generator.bit_generator.state)


def _set_rng_state(generator: np.random.Generator, state: dict) -> None:
    try:
        generator.bit_generator.state = _numbers(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise ResumeError(f"resume: a random generator's state is damaged ({exc})") from None


def _stringify(value):
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return value


def _numbers(value):
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def weights_digest(model) -> str:
    """sha256 of every weight's float32 bytes, in Keras order."""
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(w, "<f4").tobytes())
    return digest.hexdigest()


# --- where a run stands ---------------------------------------------------------------

@dataclass
class RunPosition:
    """Kept up to date by the training generator at every report: what capture() reads."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the epoch after those
    loss_sum: float = 0.0  # running sums of that unfinished epoch
    acc_sum: float = 0.0
    seen: int = 0
    examples: int = 0
    batch_size: int = 0
    shuffle: bool = True
    seed: int | None = None
    rng: np.random.Generator | None = None  # the data-order generator
    callbacks: tuple = ()
    ended: bool = False  # the run ended by itself (all epochs, or a callback stopped it)


def capture(model, run, config=None) -> dict:
    """The "resume" section for the model as `run` (engine.training.TrainingRun) left it.
    Call after the run stopped between two batches or ended; config: the TrainingConfig."""
    position: RunPosition = run.position
    optimizer = model.optimizer
    if optimizer is None or position.rng is None:
        raise ResumeError("resume: this run has not started, so there is nothing to continue")
    slots = {name: encode_arrays(getattr(optimizer, name)) for name in ("_m", "_v", "_mom")
             if getattr(optimizer, name, None) is not None}
    section = {
        "version": VERSION,
        "epochs_done": position.epoch,
        "batches_done": position.batch,
        "epoch_sums": [position.loss_sum, position.acc_sum, position.seen],
        "examples": position.examples,
        "batch_size": position.batch_size,
        "shuffle": position.shuffle,
        "seed": position.seed,
        "data_order": _rng_state(position.rng),
        "layer_generators": {layer.name: _rng_state(layer._rng) for layer in model.layers
                             if isinstance(getattr(layer, "_rng", None), np.random.Generator)},
        "optimizer": {"name": optimizer.name, "iterations": int(optimizer.iterations),
                      "learning_rate": None if optimizer.schedule is not None else float(optimizer.learning_rate),
                      "slots": slots},
        "callbacks": {type(cb).__name__: cb.get_state() for cb in position.callbacks if cb.get_state()},
        "weights_sha256": weights_digest(model),
    }
    if config is not None:
        section["training"] = config.to_dict()
    return section


def check_resume_section(value):
    """The section as this module accepts it (project_sections already checked its JSON type)."""
    need = {"version": int, "epochs_done": int, "batches_done": int, "examples": int, "batch_size": int,
            "data_order": dict, "optimizer": dict, "weights_sha256": str}
    for key, kind in need.items():
        if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool):
            raise ConfigError(f'"resume": {key} is missing or not {"a number" if kind is int else "valid"}; '
                              "the saved training state is damaged (Start trains afresh)")
    if value["version"] != VERSION:
        raise ConfigError(f'"resume": version {value["version"]} is not one this VisualCNN reads (it reads {VERSION})')
    return value


def problem(section, model, examples: int, batch_size: int) -> str | None:
    """Why `section` cannot continue training `model` on `examples` images at batch_size, or None."""
    if not isinstance(section, dict):
        return "there is no saved training state to continue from"
    if section.get("weights_sha256") != weights_digest(model):
        return ("the saved training state belongs to other weights (the weights were changed, loaded or "
                "retrained since); start a new run instead")
    if section.get("examples") != examples:
        return (f"the run being continued trained on {section.get('examples'):,} images, this one would use "
                f"{examples:,}: use the same data, image count and validation split")
    if section.get("batch_size") != batch_size:
        return (f"the run being continued used batch size {section.get('batch_size')}, this one {batch_size}: "
                "continue with the same batch size")
    name = (section.get("optimizer") or {}).get("name")
    if model.optimizer is not None and name != model.optimizer.name:
        return f"the run being continued used the {name} optimizer, this one {model.optimizer.name}: use the same"
    return None


def restore_optimizer(optimizer, section: dict) -> None:
    """Slots, step count and learning rate from the section; the optimizer must be built
    for the model's weights (compile after build)."""
    state = section["optimizer"]
    if not isinstance(state.get("slots", {}), dict) or not isinstance(state.get("iterations"), int):
        raise ResumeError("resume: the optimizer's saved state is damaged; start a new run")
    if optimizer._params is None:
        raise ResumeError("resume: the optimizer is not built for the model's weights yet")
    for name, entries in state.get("slots", {}).items():
        mine = getattr(optimizer, name, None)
        arrays = decode_arrays(entries)
        if mine is None or len(mine) != len(arrays) or any(a.shape != b.shape for a, b in zip(mine, arrays)):
            raise ResumeError("resume: the optimizer state does not fit this model's weights; start a new run")
        for target, value in zip(mine, arrays):
            np.copyto(target, value)
    optimizer.iterations = int(state["iterations"])
    if state.get("learning_rate") is not None and optimizer.schedule is None:
        optimizer.learning_rate = float(state["learning_rate"])


def restore_layer_generators(model, section: dict) -> None:
    saved = section.get("layer_generators", {})
    if not isinstance(saved, dict):
        raise ResumeError("resume: the random layers' saved state is damaged; start a new run")
    for layer in model.layers:
        state = saved.get(layer.name)
        if state is not None and isinstance(getattr(layer, "_rng", None), np.random.Generator):
            _set_rng_state(layer._rng, state)


def check_data_order(rng: np.random.Generator, section: dict) -> None:
    """After the engine replayed the shuffles, its generator must be where the saved one was."""
    if _rng_state(rng) != section["data_order"]:
        raise ResumeError("resume: replaying the data order did not reach the saved state (different data, seed "
                          "or shuffling); start a new run")


def restore_callbacks(callbacks, section: dict) -> None:
    states = section.get("callbacks", {})
    if not isinstance(states, dict):
        raise ResumeError("resume: the callbacks' saved state is damaged; start a new run")
    for cb in callbacks:
        state = states.get(type(cb).__name__)
        if state:
            try:
                cb.set_state(state)
            except (KeyError, TypeError, ValueError, ConfigError):
                raise ResumeError(f"resume: the saved state of {type(cb).__name__} is damaged; start a new "
                                  "run") from None


__all__ = ["capture", "check_resume_section", "problem", "restore_optimizer", "restore_layer_generators",
           "check_data_order", "restore_callbacks", "weights_digest", "RunPosition", "ResumeError",
           "encode_arrays", "decode_arrays"]
