"""`visualcnn train --save` records its run in the saved file's "runs" section, after the
runs the trained file already had; the file reads back through the checker."""

import json

from visualcnn.cli import main
from visualcnn.engine import read_model_file


def _model_file(tmp_path):
    doc = {"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
           "layers": [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
                      {"class_name": "MaxPooling2D", "config": {}},
                      {"class_name": "Flatten", "config": {}},
                      {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}}],
           "training": {"optimizer": "adam", "learning_rate": 0.003, "seed": 5}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_train_save_records_the_run_after_the_earlier_ones(tmp_path, capsys):
    first, second = str(tmp_path / "first.json"), str(tmp_path / "second.json")
    common = ["--limit", "200", "--batch-size", "32", "--validation-split", "0.1", "--json"]
    assert main(["train", _model_file(tmp_path), "--epochs", "2", *common, "--save", first]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["train", first, "--epochs", "1", "--learning-rate", "0.01", *common, "--save", second]) == 0
    capsys.readouterr()
    runs = read_model_file(open(second).read()).sections["runs"]
    assert [r["id"] for r in runs] == [1, 2]
    one, two = runs
    assert one["source"] == "cli" and one["status"] == "completed" and one["epochs"] == 2
    assert one["settings"]["learning_rate"] == 0.003 and two["settings"]["learning_rate"] == 0.01
    assert one["settings"]["limit"] == 200 and "200" in one["dataset"]
    assert one["final"]["test_accuracy"] == float(f"{result['test_accuracy']:.5g}")  # 5 significant digits
    assert one["curves"]["epoch"] == [1, 2] and len(one["curves"]["val_loss"]) == 2
    assert one["curves"]["loss"] == [float(f"{v:.5g}") for v in result["history"]["loss"]]
    assert one["steps"]["x"][-1] == 2.0  # 180 training images in batches of 32: 6 steps an epoch, all kept
    assert len(one["steps"]["x"]) == 12
    # the first file keeps only its own run
    assert [r["id"] for r in read_model_file(open(first).read()).sections["runs"]] == [1]
