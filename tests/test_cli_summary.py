"""`visualcnn summary`, --help and --version, run as a user would: a real subprocess."""

import json
import subprocess
import sys

import pytest

from visualcnn.resources import preset_dir

SEED_TABLE = '''Model: "seed_cnn"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 64)             │       102,464 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dropout (Dropout)               │ (None, 64)             │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 121,930 (476.29 KB)
 Trainable params: 121,930 (476.29 KB)
 Non-trainable params: 0 (0.00 B)
'''


def run(*args, env_columns="80"):
    import os
    env = {**os.environ, "COLUMNS": env_columns}
    return subprocess.run([sys.executable, "-m", "visualcnn", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_seed_cnn_table_matches_keras():
    result = run("summary", str(preset_dir() / "seed_cnn.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == SEED_TABLE


def test_wide_terminal_uses_keras_88_columns():
    result = run("summary", str(preset_dir() / "seed_cnn.json"), env_columns="200")
    assert len(result.stdout.splitlines()[1]) == 88


def test_json_output():
    result = run("summary", "--json", str(preset_dir() / "seed_cnn.json"))
    data = json.loads(result.stdout)
    assert data["total_params"] == 121930 and data["layers"][0]["output_shape"] == [None, 26, 26, 32]


BAD_FILES = {
    "not_json.json": "this is not json",
    "wrong_types.json": '{"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1], '
                        '"layers": [{"class_name": "Dense", "config": {"units": "ten"}}]}',
    "unknown_layer.json": '{"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1], '
                          '"layers": [{"class_name": "Conv9D"}]}',
    "impossible.json": '{"format": "visualcnn.model", "version": 1, "input_shape": [3, 3, 1], '
                       '"layers": [{"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": 5}}]}',
    "nan.json": '{"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, NaN], "layers": []}',
    "deep.json": "[" * 200000 + "]" * 200000,
    "empty.json": "",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_exit_nonzero_with_one_error_line(tmp_path, name):
    path = tmp_path / name
    path.write_text(BAD_FILES[name])
    result = run("summary", str(path))
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path):
    result = run("summary", str(tmp_path / "missing.json"))
    assert result.returncode != 0 and result.stderr.startswith("error: ") and "no such file" in result.stderr


def test_help_and_version():
    assert run("--help").returncode == 0 and "summary" in run("--help").stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("visualcnn ")


# --- hostile inputs: one line, never a hang or a traceback -----------------------------------

def one_error_line(result):
    assert result.returncode != 0 and result.returncode != 134, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_narrow_terminal_still_prints_a_table():
    result = run("summary", "seed_cnn", env_columns="15")  # looped forever: a zero-width cell
    assert result.returncode == 0, result.stderr
    widths = {len(line) for line in result.stdout.splitlines()[1:-3]}
    assert widths == {40}


@pytest.mark.parametrize("value", ["-50", "0", "5", "1000000000"])
def test_line_length_out_of_range_is_an_error(value):
    line = one_error_line(run("summary", "seed_cnn", "--line-length", value))
    assert "--line-length must be between 40 and 1000" in line


def test_explicit_line_length_is_used():
    result = run("summary", "seed_cnn", "--line-length", "60")
    assert result.returncode == 0 and len(result.stdout.splitlines()[1]) == 60


def test_utf8_bom_file_is_accepted(tmp_path):
    path = tmp_path / "notepad.json"
    path.write_bytes(b"\xef\xbb\xbf" + (preset_dir() / "seed_cnn.json").read_bytes())
    result = run("summary", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == SEED_TABLE


def test_device_fifo_and_huge_file_are_refused_before_reading(tmp_path):
    import os

    assert "not a regular file" in one_error_line(run("summary", "/dev/zero"))
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    assert "not a regular file" in one_error_line(run("summary", str(fifo)))
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(60 * 1024 * 1024)  # sparse: takes no disk space
    assert "too large" in one_error_line(run("summary", str(huge)))


def test_closed_pipe_ends_quietly(tmp_path):
    import os

    entries = ",".join('{"class_name": "Dense", "config": {"units": 2}}' for _ in range(3000))
    path = tmp_path / "long.json"
    path.write_text('{"format": "visualcnn.model", "version": 1, "input_shape": [4], "layers": [' + entries + "]}")
    process = subprocess.Popen([sys.executable, "-m", "visualcnn", "summary", str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "80"})
    first = process.stdout.readline()  # like `| head -1`: read a little, then leave
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert first.startswith(b"Model:") and stderr == ""


# --- presets by name, from any folder --------------------------------------------------------

def test_summary_of_a_preset_by_name_from_another_folder(tmp_path):
    import os

    result = subprocess.run([sys.executable, "-m", "visualcnn", "summary", "seed_cnn"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0 and result.stdout == SEED_TABLE


@pytest.mark.parametrize("argv,attribute", [(["seed_cnn"], "file"), (["gui", "seed_cnn"], "file"),
                                            (["train", "seed_cnn"], "model"), (["summary", "seed_cnn"], "file")])
def test_every_command_resolves_a_preset_name(tmp_path, monkeypatch, argv, attribute):
    from visualcnn import cli

    monkeypatch.chdir(tmp_path)
    seen = {}
    real_build = cli.build_parser

    def build_parser():
        parser = real_build()
        for action in parser._subparsers._group_actions[0].choices.values():
            action.set_defaults(run=lambda args: seen.setdefault("value", getattr(args, attribute)) and 0)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)
    assert cli.main(argv) == 0
    assert seen["value"] == str(preset_dir() / "seed_cnn.json")


def test_unknown_bare_name_lists_the_presets(tmp_path):
    line = one_error_line(run("summary", "no_such_model"))
    assert "no such model file or preset" in line and "seed_cnn" in line


# --- no display: one line and how to fix it, never Qt's abort --------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux display rules")
def test_no_display_is_one_line_not_an_abort():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "visualcnn"], capture_output=True, text=True, timeout=60, env=env)
    line = one_error_line(result)
    assert "no display" in line and "xvfb-run" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux display rules")
def test_unreachable_x_server_is_one_line_not_an_abort():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY",)}
    env.update(QT_QPA_PLATFORM="xcb", DISPLAY=":4321")  # no X server there
    result = subprocess.run([sys.executable, "-m", "visualcnn"], capture_output=True, text=True, timeout=60, env=env)
    line = one_error_line(result)
    # With every library installed the X server is the problem; on a machine lacking one, the library.
    assert "no X server answers" in line or "apt-get install" in line


def test_missing_xcb_library_names_the_apt_package(monkeypatch):
    from visualcnn import platform_check

    monkeypatch.setattr(platform_check.sys, "platform", "linux")
    monkeypatch.setattr(platform_check, "plugin_path", lambda name: preset_dir())  # any existing path
    monkeypatch.setattr(platform_check, "missing_libraries", lambda plugin: ["libxcb-icccm.so.4", "libfoo-x11.so.0"])
    message = platform_check.display_problem({"DISPLAY": ":0"})
    assert message.startswith("the window cannot open: Qt's xcb platform needs libxcb-icccm.so.4, libfoo-x11.so.0")
    assert message.endswith("sudo apt-get install libfoo-x11-0 libxcb-icccm4") and "\n" not in message


def test_offscreen_needs_no_display(monkeypatch):
    from visualcnn import platform_check

    monkeypatch.setattr(platform_check, "missing_libraries", lambda plugin: [])
    assert platform_check.display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


# --- Ctrl-C: one line, exit 130 --------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_the_first_compile_is_one_line(tmp_path):
    import os
    import signal
    import time

    # A fresh numba cache: the interrupt lands in imports or in the first compile.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    process = subprocess.Popen([sys.executable, "-m", "visualcnn", "train", "seed_cnn", "--limit", "64"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                               start_new_session=True)
    time.sleep(3)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: to the whole process group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "error: interrupted" and "Traceback" not in stderr


def test_quit_after_opens_the_window_and_exits_zero(tmp_path):
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "visualcnn", "gui", "--quit-after", "1"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "opened on Qt's offscreen platform" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_closes_the_window_with_one_line(tmp_path):
    import os
    import signal
    import time

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "visualcnn", "gui", "--quit-after", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8)  # the window is up (an earlier Ctrl-C must end the same way)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in stderr
    assert "opened on" not in stdout  # it was Ctrl-C that closed it, not the timer


@pytest.mark.parametrize("args", [("summary", "--line-length", "abc", "seed_cnn"), ("summary",), ("--bogus",),
                                  ("summary", "")])
def test_usage_mistakes_are_one_line(args):
    line = one_error_line(run(*args))
    assert "--help" in line or "empty" in line


def test_table_survives_an_output_encoding_without_box_characters():
    import os

    # Windows redirects stdout to files in cp1252; some Linux locales are Latin-1.
    env = {**os.environ, "COLUMNS": "80", "PYTHONIOENCODING": "latin-1"}
    result = subprocess.run([sys.executable, "-m", "visualcnn", "summary", "seed_cnn"], capture_output=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8") == SEED_TABLE


def test_ctrl_c_swallowed_by_a_compiler_callback_still_ends_the_run():
    # llvmlite calls back into Python through ctypes while numba compiles; a KeyboardInterrupt
    # raised there used to be printed as "Exception ignored ..." and the training went on.
    script = """
import ctypes, sys
import visualcnn.commands.summary as summary
from visualcnn import cli

def interrupted_callback():
    raise KeyboardInterrupt

def run(args):
    ctypes.CFUNCTYPE(None)(interrupted_callback)()
    print("the run went on")
    return 0

summary.run = run
sys.exit(cli.main(["summary", "seed_cnn"]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "error: interrupted" and result.stdout == ""


def test_window_options_work_without_the_gui_word(tmp_path):
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "foo;offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "visualcnn", "--quit-after", "1"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "opened on Qt's offscreen platform" in result.stdout


def test_unknown_qt_platform_is_one_line_not_an_abort():
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "foo"}
    line = one_error_line(subprocess.run([sys.executable, "-m", "visualcnn"], capture_output=True, text=True,
                                         timeout=60, env=env))
    assert "no platform called 'foo'" in line


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")
@pytest.mark.parametrize("closed,args,code", [(1, ("summary", "seed_cnn"), 0), (2, ("summary", "no_such_model"), 2),
                                              (1, ("--version",), 0)])
def test_closed_stdout_or_stderr_is_no_traceback(closed, args, code):
    import os

    result = subprocess.run([sys.executable, "-m", "visualcnn", *args], capture_output=True, text=True, timeout=60,
                            preexec_fn=lambda: os.close(closed))
    assert result.returncode == code
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11")
def test_real_window_opens_on_xcb_under_xvfb(tmp_path):
    """What the offscreen suite cannot see: Qt's xcb plugin and every library it needs load."""
    import os
    import shutil

    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed (apt-get install xvfb xauth)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path))
    result = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "visualcnn",
                             "--quit-after", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "opened on Qt's xcb platform" in result.stdout


# --- graphs: VisualCNN graph files and Keras Functional JSON -------------------------------

GRAPH_FILE = {"format": "visualcnn.model", "version": 1, "name": "skip", "input_shape": [8, 8, 1], "layers": [
    {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"}},
    {"class_name": "Conv2D", "config": {"name": "conv2d_1", "filters": 2, "kernel_size": 1},
     "inbound": ["input_layer"]},
    {"class_name": "Add", "config": {"name": "add"}, "inbound": ["conv2d", "conv2d_1"]},
    {"class_name": "Flatten", "config": {"name": "flatten"}},
    {"class_name": "Dense", "config": {"name": "dense", "units": 10, "activation": "softmax"}}]}

GRAPH_TABLE = '''Model: "skip"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ input_layer         │ (None, 8, 8, 1)   │          0 │ -                 │
│ (InputLayer)        │                   │            │                   │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ conv2d (Conv2D)     │ (None, 8, 8, 2)   │         20 │ input_layer[0][0] │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ conv2d_1 (Conv2D)   │ (None, 8, 8, 2)   │          4 │ input_layer[0][0] │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ add (Add)           │ (None, 8, 8, 2)   │          0 │ conv2d[0][0],     │
│                     │                   │            │ conv2d_1[0][0]    │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ flatten (Flatten)   │ (None, 128)       │          0 │ add[0][0]         │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ dense (Dense)       │ (None, 10)        │      1,290 │ flatten[0][0]     │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 1,314 (5.13 KB)
 Trainable params: 1,314 (5.13 KB)
 Non-trainable params: 0 (0.00 B)
'''  # what Keras 3.15.1 prints for the same model (80-column terminal)


def test_graph_file_prints_keras_functional_table(tmp_path):
    path = tmp_path / "skip.json"
    path.write_text(json.dumps(GRAPH_FILE))
    result = run("summary", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == GRAPH_TABLE
    data = json.loads(run("summary", "--json", str(path)).stdout)
    assert data["input_name"] == "input_layer"
    assert [layer["inbound"] for layer in data["layers"]] == [["input_layer"], ["input_layer"], ["conv2d", "conv2d_1"],
                                                              ["add"], ["flatten"]]


def test_keras_functional_json_summary_has_the_input_row(tmp_path):
    from pathlib import Path

    real = json.loads((Path(__file__).parent / "engine" / "keras_fixtures" / "functional_refusals.json").read_text())
    path = tmp_path / "linear.json"
    path.write_text(json.dumps(real["linear"]))
    result = run("summary", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[4].startswith("│ input_layer (InputLayer)")
    assert "Connected to" not in result.stdout  # Keras drops the column when every layer has one input
    two = tmp_path / "two.json"
    two.write_text(json.dumps(real["two_inputs"]))
    refused = run("summary", str(two))
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1
    assert "has 2 inputs ('left', 'right')" in refused.stderr


def test_evaluate_a_saved_graph_model(tmp_path):
    from visualcnn.engine import Model, layers

    inputs = layers.Input(shape=(28, 28, 1))
    a = layers.Conv2D(2, 3, padding="same")(inputs)
    b = layers.Conv2D(2, 1)(inputs)
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(layers.Concatenate()([a, b])))
    model = Model(inputs, outputs, name="branches")
    model.build()
    path = tmp_path / "saved.json"
    model.save(path)
    result = run("evaluate", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert 0.0 <= json.loads(result.stdout)["test_accuracy"] <= 1.0


def test_evaluate_a_keras_functional_json_says_to_train_it_first(tmp_path):
    from pathlib import Path

    real = json.loads((Path(__file__).parent / "engine" / "keras_fixtures" / "functional_refusals.json").read_text())
    path = tmp_path / "keras.json"
    path.write_text(json.dumps(real["linear"]))
    line = one_error_line(run("evaluate", str(path)))
    assert "keras.json: holds no weights" in line and "visualcnn train keras.json --save trained.json" in line
