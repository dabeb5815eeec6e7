"""The benchmark API and `visualcnn bench`, on tiny step counts (no timing assertions:
speed is measured in benchmarks/, not asserted here)."""

import json
import math

import numpy as np
import pytest

from visualcnn.cli import main
from visualcnn.commands import bench as bench_cmd
from visualcnn.engine import benchmark, layers, parallel
from visualcnn.engine.model import Sequential

TINY = dict(batch_size=4, steps=2, predict_batch_size=8, latency_repeats=3, layer_steps=2)


@pytest.fixture(autouse=True)
def restore_threads():
    before = parallel.get_num_threads()
    yield
    parallel.set_num_threads(before)


def small_cnn(compiled=True):
    model = Sequential([layers.Input(shape=(28, 28, 1)),
                        layers.Conv2D(4, 3, activation="relu"),
                        layers.MaxPooling2D(2),
                        layers.Conv2D(8, 3, activation="relu"),
                        layers.Flatten(),
                        layers.Dropout(0.5),
                        layers.Dense(10, activation="softmax")], name="small")
    if compiled:
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def finite_positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_layer_costs_one_row_per_layer_and_model_untouched():
    model = small_cnn()
    model.build(seed=5)
    before = [w.copy() for w in model.get_weights()]
    costs = benchmark.layer_costs(model, batch_size=4, steps=2, warmup=1)
    assert [c.name for c in costs] == [layer.name for layer in model.layers]
    assert [c.class_name for c in costs] == [layer.class_name for layer in model.layers]
    for c in costs:
        assert (c.forward_ms > 0) != bool(c.forward_in) and c.backward_ms >= 0
        assert c.total_ms == pytest.approx(c.forward_ms + c.backward_ms)
    # the first layer's backward runs too (weight gradients), just without an input grad;
    # here in one pass with the max pool after it, which says so
    assert costs[0].backward_ms > 0
    assert costs[1].backward_in == costs[0].name and costs[1].backward_ms == 0
    assert all(c.backward_in == "" for i, c in enumerate(costs) if i != 1)
    # and, the pool being 2x2, the forward too
    assert costs[0].forward_ms > 0
    assert costs[1].forward_in == costs[0].name and costs[1].forward_ms == 0
    assert all(c.forward_in == "" for i, c in enumerate(costs) if i != 1)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    # the timing wrappers are gone from the layers again
    assert all("forward" not in vars(layer) and "backward" not in vars(layer) for layer in model.layers)


def test_layer_costs_of_an_uncompiled_model_uses_a_compiled_copy():
    model = small_cnn(compiled=False)
    costs = benchmark.layer_costs(model, batch_size=3, steps=1, warmup=1)
    assert len(costs) == len(model.layers)
    assert model.optimizer is None and model.loss is None


def test_benchmark_result_fields_and_dict():
    model = small_cnn()
    result = benchmark.benchmark(model, threads=1, **TINY)
    assert result.threads == 1 and result.batch_size == 4 and result.steps == 2
    for key in ("train_images_per_second", "train_step_ms", "predict_images_per_second",
                "predict_latency_ms", "epoch_seconds_estimated", "peak_rss_mb"):
        assert finite_positive(getattr(result, key)), key
    assert result.epoch_seconds_estimated == pytest.approx(60000 / result.train_images_per_second)
    assert result.step_other_ms >= 0
    d = result.to_dict()
    json.dumps(d)
    assert [row["name"] for row in d["layers"]] == [layer.name for layer in model.layers]
    assert set(d["layers"][0]) == {"name", "class_name", "forward_ms", "backward_ms", "backward_in", "forward_in"}
    assert d["epoch_seconds_measured"] is None
    assert not model.built  # measured on a copy: the model itself was never even built


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_benchmark_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="positive integer"):
        benchmark.benchmark(small_cnn(), **{**TINY, "steps": bad})
    with pytest.raises(ValueError, match="positive integer"):
        benchmark.benchmark(small_cnn(), **{**TINY, "batch_size": bad})


def test_full_epoch_refuses_models_that_do_not_fit_mnist():
    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Flatten(),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="10 outputs"):
        benchmark.benchmark(model, full_epoch=True, **TINY)


def test_cli_json_last_line(capsys):
    code = main(["bench", "seed_cnn", "--batch-size", "4", "--steps", "2", "--threads", "1",
                 "--predict-batch-size", "8", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    assert result["model"] == "seed_cnn" and result["batch_size"] == 4 and result["threads"] == 1
    for key in ("train_images_per_second", "predict_images_per_second", "predict_latency_ms",
                "epoch_seconds_estimated", "peak_rss_mb"):
        assert result[key] > 0, key
    assert [row["name"] for row in result["layers"]] == [
        "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense", "dropout", "dense_1"]


def test_cli_text_report_for_a_model_file(tmp_path, capsys):
    doc = {"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
           "layers": [{"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": 5, "padding": "same",
                                                          "activation": "tanh"}},
                      {"class_name": "AveragePooling2D", "config": {"pool_size": 2}},
                      {"class_name": "Flatten", "config": {}},
                      {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(doc))
    assert main(["bench", str(path), "--batch-size", "3", "--steps", "1", "--predict-batch-size", "5"]) == 0
    out = capsys.readouterr().out
    assert "model tiny: batch 3" in out and "images/s" in out and "per MNIST epoch" in out
    assert "forward ms" in out and "average_pooling2d" in out and "MiB peak RSS" in out


@pytest.mark.parametrize("argv,message", [
    (["bench", "no_such_preset"], "no such model file or preset"),
    (["bench", "--steps", "0"], "steps must be a positive integer"),
    (["bench", "--batch-size", "-3"], "batch_size must be a positive integer"),
    (["bench", "--threads", "0"], "--threads must be from 1 to"),
])
def test_cli_user_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_preset_names_resolve(tmp_path):
    assert bench_cmd.resolve_model_path("lenet5").name == "lenet5.json"
    assert bench_cmd.resolve_model_path("seed_cnn.json").name == "seed_cnn.json"
    own = tmp_path / "mine.json"
    own.write_text("{}")
    assert bench_cmd.resolve_model_path(str(own)) == own
    model = bench_cmd.load_benchmark_model("seed_cnn")
    assert model.optimizer is not None and model.optimizer.name == "adam"


# --- share of the machine's peak, PyTorch comparison ----------------------------------------

def test_model_flops_counted_by_hand():
    model = Sequential([layers.Input(shape=(10, 10, 2)), layers.Conv2D(3, 3), layers.Flatten(),
                        layers.Dense(4)])
    fwd, step = benchmark.model_flops(model, batch_size=5)
    conv = 5 * 8 * 8 * (3 * 3 * 2 * 3)  # multiply-adds: images x output pixels x kernel size
    dense = 5 * (8 * 8 * 3) * 4
    assert fwd == 2 * (conv + dense)
    # backward: weight gradients of both, input gradient of the Dense only (first layer's is skipped)
    assert step == 2 * (conv + dense) + 2 * (conv + dense) + 2 * dense


def test_model_flops_of_transposed_and_separable_convs():
    model = Sequential([layers.Input(shape=(6, 6, 4)), layers.SeparableConv2D(5, 3, depth_multiplier=2),
                        layers.Conv2DTranspose(2, 3, strides=2)])
    fwd, _ = benchmark.model_flops(model, batch_size=1)
    separable = 4 * 4 * (3 * 3 * 4 * 2 + 1 * 1 * 8 * 5)  # depthwise + pointwise at each output pixel
    transposed = 4 * 4 * (3 * 3 * 2 * 5)  # at each *input* pixel
    assert fwd == 2 * (separable + transposed)


def test_sgemm_peak_is_measured_once_per_process():
    first = benchmark.measure_sgemm_peak(threads=2, n=128, calls=1, repeats=1)
    assert finite_positive(first["single"]) and finite_positive(first["all"])
    assert first["threads"] == 2 and first["n"] == 128
    assert benchmark.measure_sgemm_peak(threads=2, n=128, calls=1, repeats=1) is first


def test_benchmark_reports_the_share_of_the_peak():
    result = benchmark.benchmark(small_cnn(), threads=1, **TINY)
    _, step_flops = benchmark.model_flops(small_cnn(), TINY["batch_size"])
    assert result.train_flops_per_step == step_flops
    assert result.train_gflops == pytest.approx(step_flops * result.train_images_per_second / 4 / 1e9)
    # one thread: the share is against the single-thread peak
    assert result.peak_gflops == result.peak_single_gflops
    assert result.peak_share == pytest.approx(result.train_gflops / result.peak_single_gflops)
    assert benchmark.benchmark(small_cnn(), threads=1, peak=False, **TINY).peak_share is None


def test_cli_json_has_the_peak_share(capsys):
    assert main(["bench", "seed_cnn", "--batch-size", "4", "--steps", "2", "--threads", "1",
                 "--predict-batch-size", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("train_gflops", "peak_gflops", "peak_single_gflops", "peak_all_gflops", "peak_share"):
        assert finite_positive(result[key]), key
    assert result["peak_share"] == pytest.approx(result["train_gflops"] / result["peak_gflops"])
    assert "torch" not in result


def test_cli_text_report_names_the_peak(capsys):
    assert main(["bench", "seed_cnn", "--batch-size", "4", "--steps", "2", "--threads", "1",
                 "--predict-batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "of this machine's float32 matrix-multiply peak" in out and "GFLOP/s" in out


def test_compare_torch_without_torch_says_what_to_do(capsys, monkeypatch):
    from visualcnn.commands import bench_torch

    monkeypatch.setattr(bench_torch, "torch_available", lambda: False)
    assert main(["bench", "seed_cnn", "--compare-torch"]) == 2
    err = capsys.readouterr().err
    assert "PyTorch is not installed" in err and "--compare-torch" in err


def test_predict_memory_only(capsys):
    assert main(["bench", "seed_cnn", "--predict-memory-only", "--predict-batch-size", "16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["predict_peak_rss_mb"] >= result["rss_before_predict_mb"] > 0


def test_torch_ratios_direction():
    ours = {"train_images_per_second": 200.0, "predict_images_per_second": 50.0, "predict_latency_ms": 0.5}
    theirs = {"train_images_per_second": 100.0, "predict_images_per_second": 100.0, "predict_latency_ms": 1.0}
    assert bench_cmd.torch_ratios(ours, theirs) == {"train_images_per_second": 2.0,
                                                     "predict_images_per_second": 0.5,
                                                     "predict_latency_ms": 2.0}


def _network_files():
    from pathlib import Path

    return sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "networks").glob("*.json"))


def test_the_eleven_benchmark_networks_are_model_files_that_train():
    from visualcnn.engine import load_model_file

    files = _network_files()
    assert len(files) == 11  # issue 10's nine, then the ResNet and Inception presets (graphs) of issue 11
    kinds = set()
    for path in files:
        model = load_model_file(path).model
        model.checked_report()
        kinds.update(layer.class_name for layer in model.layers)
        assert model.output_shape[-1] == 10
    assert {"BatchNormalization", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Add", "Concatenate"} <= kinds
    shapes = {tuple(load_model_file(p).model.input_shape) for p in files}
    assert shapes == {(28, 28, 1), (32, 32, 3)}


def test_torch_twins_have_the_same_shapes_and_parameters():
    pytest.importorskip("torch")
    from visualcnn.commands.bench_torch import build_torch_model
    from visualcnn.engine import load_model_file

    for path in _network_files():
        model = load_model_file(path).model
        net = build_torch_model(model)  # raises when the output shape differs
        trainable = sum(int(np.prod(s.shape)) for row in model.checked_report().rows
                        for s in row.inference.weights if s.trainable)
        assert sum(p.numel() for p in net.parameters()) == trainable, path.name


def test_graph_benchmark_networks_are_the_presets_they_copy():
    """10_resnet_mnist.json and 11_inception_mnist.json are the presets of the same name (only the
    description says where they come from), so the speed table measures what students train."""
    import json

    from visualcnn.resources import preset_path

    for path in _network_files():
        stem = path.stem.split("_", 1)[1]
        if stem in ("resnet_mnist", "inception_mnist"):
            ours, preset = json.loads(path.read_text()), json.loads(preset_path(stem).read_text())
            assert ours.pop("description") != preset.pop("description")
            assert ours == preset, path.name


def _copy_weights_to_twin(model, net):
    """The engine model's weights into its torch twin, as the PyTorch export writes them
    (conv kernels HWIO -> OIHW, dense kernels transposed, BatchNormalization gamma, beta
    and moving statistics; the twin flattens in Keras's (h, w, c) order)."""
    import torch

    from visualcnn.engine.export.pytorch_folder import state_arrays

    net.load_state_dict({key: torch.from_numpy(value) for key, value in state_arrays(model).items()})


@pytest.mark.parametrize("name", ["resnet_mnist", "inception_mnist"])
def test_torch_twin_of_a_graph_computes_what_the_engine_computes(name):
    """The twin walks the graph with its inbound: with the same weights, its forward pass (eval
    mode, softmax applied) equals the engine's predict, so the speed comparison is fair."""
    torch = pytest.importorskip("torch")
    from visualcnn.commands.bench_torch import build_torch_model
    from visualcnn.engine import load_model_file

    model = load_model_file(next(p for p in _network_files() if p.stem.endswith(name))).model
    model.build(seed=3)
    for layer in model.layers:  # non-trivial BN statistics, so a mixed-up layer would show
        if layer.class_name == "BatchNormalization":
            rng = np.random.default_rng(len(layer.name))
            for w in layer.weights:
                w[...] = rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
    net = build_torch_model(model).eval()
    _copy_weights_to_twin(model, net)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    with torch.no_grad():
        theirs = torch.softmax(net(torch.tensor(x).permute(0, 3, 1, 2)), 1).numpy()
    np.testing.assert_allclose(model.predict(x), theirs, atol=1e-5)


def test_default_threads_report_the_governors_choice(monkeypatch):
    monkeypatch.delenv("VISUALCNN_ADAPTIVE_THREADS", raising=False)
    monkeypatch.setattr(parallel, "_threads_chosen", [False])
    if not parallel.governor_active():
        pytest.skip("one core: nothing to choose")
    result = benchmark.benchmark(small_cnn(), peak=False, **TINY)
    assert result.adaptive_threads in parallel.ThreadGovernor(enabled=False).candidates
    assert benchmark.benchmark(small_cnn(), threads=1, peak=False, **TINY).adaptive_threads is None
