"""`visualcnn train MODEL [--data mnist|fashion_mnist|DIR]`: train a model file on the bundled MNIST
(or the data set named: commands/data_option.py), then test it.

Defaults come from the file's "training" section (TrainingConfig) when present; flags
override. Progress goes to stderr; with --json the last stdout line is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time

# Must precede numpy's import (OpenBLAS reads it at load): numba's threads do the
# parallel work; BLAS threads competing for the same cores slow training down.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


MNIST_TRAIN_IMAGES = 60000

from .data_option import add_data_argument  # noqa: E402  (--data: engine/dataset_spec.py)


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a VisualCNN model file or a Keras model.to_json() file")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training set (default: file, else 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: file, else 64)")
    parser.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default=None,
                        help="default: file, else adam")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: file, else the optimizer's Keras default")
    parser.add_argument("--schedule", choices=("constant", "step", "exponential", "cosine"), default=None,
                        help="learning rate: constant; step (times --decay-rate every --decay-epochs epochs, "
                             "Keras PiecewiseConstantDecay); exponential (the same smoothly, ExponentialDecay); "
                             "cosine decay from --learning-rate to 0 over the run (default: file, else constant)")
    parser.add_argument("--decay-rate", type=float, default=None,
                        help="step / exponential schedules: the factor per period (default: file, else 0.5)")
    parser.add_argument("--decay-epochs", type=int, default=None,
                        help="step / exponential schedules: epochs per period (default: file, else 1)")
    parser.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                        help="EarlyStopping: stop when --monitor has not improved for PATIENCE epochs")
    parser.add_argument("--restore-best", action="store_true", default=None,
                        help="with --early-stopping: end with the weights of the best epoch (restore_best_weights)")
    parser.add_argument("--reduce-lr-on-plateau", type=int, default=None, metavar="PATIENCE", nargs="?", const=2,
                        help="ReduceLROnPlateau: multiply the learning rate by 0.1 when --monitor has not improved "
                             "for PATIENCE epochs (default 2)")
    parser.add_argument("--monitor", choices=("val_loss", "val_accuracy", "loss", "accuracy"), default=None,
                        help="what the callbacks watch (default: file, else val_loss, which needs "
                             "--validation-split)")
    parser.add_argument("--checkpoint", metavar="PATH", default=None,
                        help="ModelCheckpoint: save the model after every epoch (PATH may hold {epoch}, e.g. "
                             "ckpt-{epoch:02d}.json; .json, .keras or .weights.h5)")
    parser.add_argument("--checkpoint-best", action="store_true",
                        help="with --checkpoint: save only when --monitor improved (save_best_only)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in MODEL (by --save) exactly where it stopped, for --epochs "
                             "more epochs: the same weights as one uninterrupted run")
    parser.add_argument("--validation-split", type=float, default=None,
                        help="fraction of the training images (the last ones) held out for validation")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    add_data_argument(parser)
    parser.add_argument("--seed", type=int, default=None, help="seed for weights, shuffling and dropout")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--save", metavar="PATH", default=None, help="write the trained model (JSON + weights) here")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")


def resolve_config(file_config, args):
    """The TrainingConfig to use: the file's section (or defaults), overridden by flags."""
    from ..engine.training_config import DEFAULT_LEARNING_RATES, TrainingConfig

    values = (file_config or TrainingConfig()).to_dict()
    if args.optimizer is not None and args.optimizer != values["optimizer"]:
        values["optimizer"] = args.optimizer
        values["learning_rate"] = DEFAULT_LEARNING_RATES[args.optimizer]
    for flag, key in (("learning_rate", "learning_rate"), ("epochs", "epochs"), ("batch_size", "batch_size"),
                      ("validation_split", "validation_split"), ("seed", "seed"), ("schedule", "schedule"),
                      ("decay_rate", "decay_rate"), ("decay_epochs", "decay_epochs"), ("monitor", "monitor"),
                      ("restore_best", "restore_best_weights")):
        value = getattr(args, flag, None)
        if value is not None:
            values[key] = value
    if getattr(args, "early_stopping", None) is not None:
        values.update(early_stopping=True, patience=args.early_stopping)
    if getattr(args, "reduce_lr_on_plateau", None) is not None:
        values.update(reduce_lr_on_plateau=True, reduce_lr_patience=args.reduce_lr_on_plateau)
    return TrainingConfig.from_dict(values)


def _warm_up(model, batch_size: int, stream) -> None:
    """First run on this machine: compile the model's kernels in parallel processes
    (engine/warmup.py) instead of one by one inside the first training step."""
    from ..engine.warmup import preparing_line, warm_up

    start = time.perf_counter()
    shown = [False]

    def progress(done, total):
        if stream.isatty() and time.perf_counter() - start > 0.5 and done < total:
            stream.write("\r" + preparing_line(done, total))
            stream.flush()
            shown[0] = True

    warm_up(model, progress=progress, batch_size=batch_size, window=False)
    if shown[0]:
        stream.write("\r\033[K")
        stream.flush()


def run(args) -> int:
    from ..engine import load_model_file
    from ..engine.datasets import load_mnist
    from ..engine.recipe import check_ready, prepare_run
    from ..engine.training import EpochReport, StepReport, TrainingDiverged, format_step

    model_file = load_model_file(args.model)
    model = model_file.model
    config = resolve_config(model_file.training, args)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of images, received {args.limit}")
    if args.save:
        check_save_path(args.save)  # before the run, not after an hour of training
    if args.threads is not None:
        from ..engine import parallel

        parallel.set_num_threads(args.threads)

    # One recipe for the CLI and the window (engine/recipe.py): checks, memory, labels,
    # build, compile and the run itself. Checked once before reading the data, so a model that
    # cannot train is refused at once.
    from .data_option import load_for_cli, per_class_accuracy, per_class_line, resolve_spec, write_dataset_section

    spec = resolve_spec(args.data, model_file.sections, args.model)
    check_ready(model.analyse(), config, examples=args.limit or MNIST_TRAIN_IMAGES,
                dataset=None if spec.source == "mnist" else spec)
    data = load_mnist() if spec.source == "mnist" and spec.path is None else load_for_cli(spec, model.input_shape)
    resume = _resume_section(model_file, config) if getattr(args, "resume", False) else None
    prepared = prepare_run(model, config, data, limit=args.limit, callbacks=_checkpoint(args, config),
                           resume=resume)
    progress = sys.stderr
    _warm_up(model, config.batch_size, progress)
    interactive = progress.isatty()
    # The run's record for the saved file's run history (engine/run_history.py).
    recorder = _run_recorder(model, model_file, config, args, data) if args.save else None
    started = time.perf_counter()
    history: dict[str, list[float]] = {}
    epoch_seconds = []
    last_print = 0.0
    said = 0
    diverged = None
    try:
        for report in prepared.run:
            if recorder is not None:
                recorder.add(report)
            if isinstance(report, StepReport):
                now = time.perf_counter()
                if report.batch == 1:
                    progress.write(f"Epoch {report.epoch}/{report.epochs}\n")
                if interactive and (now - last_print > 0.1 or report.batch == report.batches):
                    progress.write("\r" + format_step(report))
                    progress.flush()
                    last_print = now
                elif not interactive and (now - last_print > 5.0 or report.batch == report.batches):
                    progress.write(format_step(report) + "\n")
                    last_print = now
            elif isinstance(report, EpochReport):
                epoch_seconds.append(report.seconds)
                for key, value in report.logs().items():
                    history.setdefault(key, []).append(value)
                line = f"{report.seconds:.1f}s - loss: {report.loss:.4f}"
                if report.accuracy is not None:
                    line += f" - accuracy: {report.accuracy:.4f}"
                if report.val_loss is not None:
                    line += f" - val_loss: {report.val_loss:.4f}"
                    if report.val_accuracy is not None:
                        line += f" - val_accuracy: {report.val_accuracy:.4f}"
                progress.write(("\n" if interactive else "") + line + "\n")
                for message in prepared.run.messages[said:]:  # the callbacks' lines ("early stopping")
                    progress.write(message + "\n")
                said = len(prepared.run.messages)
                progress.flush()
    except TrainingDiverged as exc:
        diverged = exc
    finally:
        prepared.run.close()
    train_seconds = time.perf_counter() - started
    for message in prepared.run.messages[said:]:  # EarlyStopping's restore comes at the very end
        progress.write(message + "\n")
    if diverged is not None:
        # The engine kept the weights of the last good step; --save keeps them as promised.
        if interactive:
            progress.write("\n")
        if args.save:
            model.save(args.save)
            write_dataset_section(args.save, spec)
            _record_run(args.save, recorder, model_file, "diverged", train_seconds)
            kept = "the weights of the last good step are kept"
            saved = f"the last good weights were saved to {args.save}"
            message = str(diverged)
            raise TrainingDiverged(message.replace(kept, saved) if kept in message else f"{message} ({saved})")
        raise diverged
    test_loss, test_accuracy = model.evaluate(prepared.x_test, prepared.y_test, batch_size=256)
    if args.save:
        save_with_resume(args.save, model, config, model_file, prepared.run)
        write_dataset_section(args.save, spec)
        _record_run(args.save, recorder, model_file, "completed", train_seconds, test_loss, test_accuracy)
    result = {"test_accuracy": test_accuracy, "test_loss": test_loss, "epochs": config.epochs,
              "epochs_done": prepared.run.position.epoch, "messages": list(prepared.run.messages),
              "seconds": round(train_seconds, 3), "seconds_per_epoch": [round(s, 3) for s in epoch_seconds],
              "history": history}
    per_class = None
    if spec.source != "mnist":  # the classes have names worth reading (MNIST's output stays as it was)
        per_class = per_class_accuracy(model, prepared.x_test, prepared.y_test, data.class_names)
        result.update(dataset=data.description, class_names=list(data.class_names),
                      per_class_accuracy={name: acc for name, acc, count in per_class if count})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"test loss: {test_loss:.4f} - test accuracy: {test_accuracy:.4f} "
              f"({config.epochs} epoch{'s' if config.epochs != 1 else ''}, {train_seconds:.1f}s)")
        if per_class:
            print(per_class_line(per_class))
        if args.save:
            print(f"saved to {args.save}")
    return 0


def _run_recorder(model, model_file, config, args, data=None):
    from ..engine.run_history import RunRecorder

    if data is not None and hasattr(data, "description"):  # --data: Fashion-MNIST, a folder (dataset_spec)
        images = min(args.limit or len(data.y_train), len(data.y_train))
        return RunRecorder(dict(config.to_dict(), limit=images), f"{data.description}; {images:,} used for training",
                           source="cli", model=model.name, params=model.analyse().total_params)
    images = min(args.limit or MNIST_TRAIN_IMAGES, MNIST_TRAIN_IMAGES)
    settings = dict(config.to_dict(), limit=images)
    return RunRecorder(settings, f"MNIST, {images:,} training images", source="cli", model=model.name,
                       params=model.analyse().total_params)


def _record_run(path, recorder, model_file, status, seconds, test_loss=None, test_accuracy=None) -> None:
    """The run joins the saved file's run history, after the runs the trained file had."""
    from ..engine.run_history import append_run_to_file

    append_run_to_file(path, recorder.finish(status, test_loss, test_accuracy, duration=seconds),
                       earlier=model_file.sections.get("runs"))


def _resume_section(model_file, config):
    """The MODEL file's saved training state, with its weights loaded into the model."""
    from ..engine.model_io import decode_weights

    section = model_file.sections.get("resume")
    if section is None or model_file.weights is None:
        raise ValueError("--resume: this file holds no saved training state; it is written by "
                         "`visualcnn train MODEL --save PATH`, then continue with `visualcnn train PATH --resume`")
    model = model_file.model
    model.build(seed=config.seed)
    model.set_weights(decode_weights(model, model_file.weights))
    return section


def _checkpoint(args, config) -> list:
    """--checkpoint PATH: Keras's ModelCheckpoint, once per epoch (or only the best)."""
    from ..engine.callbacks import ModelCheckpoint

    if not getattr(args, "checkpoint", None):
        if getattr(args, "checkpoint_best", False):
            raise ValueError("--checkpoint-best needs --checkpoint PATH")
        return []
    if args.checkpoint_best and config.monitor.startswith("val_") and not config.validation_split:
        raise ValueError(f"--checkpoint-best watches {config.monitor}, which needs --validation-split (e.g. 0.1); "
                         "or pass --monitor loss")
    return [ModelCheckpoint(args.checkpoint, monitor=config.monitor, save_best_only=args.checkpoint_best,
                            save_weights_only=args.checkpoint.endswith(".weights.h5"))]


def save_with_resume(path, model, config, model_file, run) -> None:
    """The trained model file: model, recipe, weights, the input file's other sections and
    the "resume" section (engine/resume.py) that `train PATH --resume` continues from."""
    from ..engine import resume as resume_state
    from ..engine.model_io import encode_weights, model_to_dict, write_text_atomic

    sections = dict(getattr(model_file, "sections", None) or {})
    sections["resume"] = resume_state.capture(model, run, config)
    write_text_atomic(path, json.dumps(model_to_dict(model, training=config, weights=encode_weights(model),
                                                     sections=sections)) + "\n")


def check_save_path(path: str) -> None:
    """Raise OSError (one line) unless a model file can be written at path.

    Checked before training: a missing or read-only folder found only after the run would
    cost the whole run. The folder is probed by creating (and removing) a temporary file,
    the only test that is right for every case (permissions, read-only mounts, root)."""
    import stat
    import tempfile
    from pathlib import Path

    shown = Path(path)
    target = Path(os.path.realpath(shown))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OSError(f"cannot save to {shown}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"cannot save to {shown}: it is a folder; give a file name such as "
                                    f"{shown / 'trained.json'}")
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"cannot save to {shown}: it is not a regular file (a FIFO, socket or device); "
                          "choose another file name")
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {shown}: the folder {folder} does not exist; create it first")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".visualcnn-write-test-"):
            pass
    except OSError as exc:
        raise PermissionError(f"cannot save to {shown}: the folder {folder} is not writable "
                              f"({exc.strerror or exc}); choose another --save path") from None
    if st is not None and not os.access(target, os.W_OK):
        raise PermissionError(f"cannot save to {shown}: the file is read-only; choose another --save path")


def _scale(images, input_shape):
    """uint8 MNIST -> float32 in [0, 1], shaped for the model's input (engine/recipe.py)."""
    from ..engine.recipe import scale_images

    return scale_images(images, input_shape)


def _one_hot(labels):
    from ..engine.recipe import prepare_labels

    return prepare_labels(labels, "categorical_crossentropy")
