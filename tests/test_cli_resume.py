"""`visualcnn train --resume`: a run saved after 1 epoch and continued for 1 more gives
bit-identical weights (and optimizer state) to one uninterrupted run of 2 epochs, with
Adam, dropout and an augmentation layer (their random generators are part of the state)."""

import json

from visualcnn.cli import main

LIMIT = ["--limit", "300", "--batch-size", "32", "--validation-split", "0.1"]


def _model_file(tmp_path):
    doc = {"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
           "layers": [{"class_name": "RandomTranslation", "config": {"height_factor": 0.1, "width_factor": 0.1}},
                      {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
                      {"class_name": "MaxPooling2D", "config": {}},
                      {"class_name": "Dropout", "config": {"rate": 0.3}},
                      {"class_name": "Flatten", "config": {}},
                      {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}}],
           "training": {"optimizer": "adam", "learning_rate": 0.003, "seed": 5}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _train(capsys, *args) -> dict:
    assert main(["train", *args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_two_epochs_equal_one_plus_one_resumed_bit_for_bit(tmp_path, capsys):
    model = _model_file(tmp_path)
    whole, first, second = (str(tmp_path / name) for name in ("whole.json", "first.json", "second.json"))
    straight = _train(capsys, model, "--epochs", "2", *LIMIT, "--save", whole)
    _train(capsys, model, "--epochs", "1", *LIMIT, "--save", first)
    resumed = _train(capsys, first, "--resume", "--epochs", "1", *LIMIT, "--save", second)
    a, b = json.loads(open(whole).read()), json.loads(open(second).read())
    assert a["weights"] == b["weights"]  # every float32 byte (base64 of the raw arrays)
    assert a["resume"]["optimizer"] == b["resume"]["optimizer"]  # Adam's m, v and step count
    assert a["resume"]["data_order"] == b["resume"]["data_order"]
    assert a["resume"]["layer_generators"] == b["resume"]["layer_generators"]  # dropout, translation
    assert a["resume"]["epochs_done"] == b["resume"]["epochs_done"] == 2
    assert straight["history"]["loss"][1] == resumed["history"]["loss"][0]  # the 2nd epoch, the same
    assert straight["test_accuracy"] == resumed["test_accuracy"]
    # the first run's file differs: the check above compares something that changed
    assert json.loads(open(first).read())["weights"] != a["weights"]


def test_a_step_schedule_also_resumes_exactly(tmp_path, capsys):
    model = _model_file(tmp_path)
    whole, first, second = (str(tmp_path / name) for name in ("whole.json", "first.json", "second.json"))
    schedule = ["--schedule", "step", "--decay-rate", "0.5", "--decay-epochs", "1"]
    _train(capsys, model, "--epochs", "2", *LIMIT, *schedule, "--save", whole)
    _train(capsys, model, "--epochs", "1", *LIMIT, *schedule, "--save", first)
    _train(capsys, first, "--resume", "--epochs", "1", *LIMIT, "--save", second)
    assert json.loads(open(whole).read())["weights"] == json.loads(open(second).read())["weights"]


def test_resume_refuses_a_file_without_state_and_other_data(tmp_path, capsys):
    model = _model_file(tmp_path)
    assert main(["train", model, "--resume", *LIMIT]) == 2
    assert "holds no saved training state" in capsys.readouterr().err
    first = str(tmp_path / "first.json")
    _train(capsys, model, "--epochs", "1", *LIMIT, "--save", first)
    assert main(["train", first, "--resume", "--limit", "400", "--batch-size", "32",
                 "--validation-split", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "cannot continue training" in err and "use the same data" in err and len(err.strip().splitlines()) == 1


def test_early_stopping_flags_reach_the_run(tmp_path, capsys):
    model = _model_file(tmp_path)
    result = _train(capsys, model, "--epochs", "4", *LIMIT, "--early-stopping", "0", "--restore-best",
                    "--learning-rate", "0.5")  # a rate so large that val_loss does not improve after epoch 1
    assert result["epochs_done"] < 4
    assert any("early stopping" in line for line in result["messages"])
    assert any("Restoring model weights from the end of the best epoch" in line for line in result["messages"])


def test_callback_settings_that_cannot_work_are_refused_in_one_line(tmp_path, capsys):
    model = _model_file(tmp_path)
    assert main(["train", model, "--limit", "300", "--early-stopping", "2"]) == 2
    err = capsys.readouterr().err
    assert "needs validation data" in err and len(err.strip().splitlines()) == 1


def test_checkpoint_writes_a_model_file_every_epoch(tmp_path, capsys):
    from visualcnn.engine import load_model

    model = _model_file(tmp_path)
    pattern = str(tmp_path / "ckpt-{epoch:02d}.json")
    result = _train(capsys, model, "--epochs", "2", *LIMIT, "--checkpoint", pattern, "--save", str(tmp_path / "s.json"))
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-01.json", "ckpt-02.json"]
    last, saved = load_model(tmp_path / "ckpt-02.json"), load_model(tmp_path / "s.json")
    assert all((a == b).all() for a, b in zip(last.get_weights(), saved.get_weights()))
    assert result["epochs_done"] == 2
    assert main(["train", model, "--limit", "300", "--checkpoint", pattern, "--checkpoint-best"]) == 2
    assert "needs --validation-split" in capsys.readouterr().err
