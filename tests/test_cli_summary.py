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
