"""The document as a graph: links by name, every graph edit one exact undo step, files, models."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine.layers import ConfigError
from visualcnn.engine.model_io import decode_weights, encode_weights
from visualcnn.gui.commands import (ConnectCommand, DisconnectCommand, InsertAfterCommand, InsertLayerCommand,
                                    InsertMergeCommand, InsertOnLinkCommand, MoveLayerCommand, RemoveLayerCommand,
                                    RenameLayerCommand, SetLayerConfigCommand, WrapResidualCommand,
                                    duplicate_layer_command)
from visualcnn.gui.document import LayerEntry, PipelineDocument

SAME = {"kernel_size": 3, "padding": "same"}


def stack_document() -> PipelineDocument:
    """conv2d (28x28x4) -> conv2d_1 (stride 2: 14x14x4) -> conv2d_2 (14x14x4) -> flatten -> dense."""
    doc = PipelineDocument()
    doc.reset((28, 28, 1), [LayerEntry("Conv2D", {"filters": 4, **SAME}),
                            LayerEntry("Conv2D", {"filters": 4, "strides": 2, **SAME}),
                            LayerEntry("Conv2D", {"filters": 4, **SAME}),
                            LayerEntry("Flatten", {}), LayerEntry("Dense", {"units": 10})])
    return doc


def branch_document() -> PipelineDocument:
    """Two branches from the input joined by an Add: conv_a | conv_b -> add -> flatten -> dense."""
    doc = PipelineDocument()
    doc.reset((12, 12, 1), [LayerEntry("Conv2D", {"name": "conv_a", "filters": 4, **SAME}),
                            LayerEntry("Conv2D", {"name": "conv_b", "filters": 4, **SAME}, ("input_layer",)),
                            LayerEntry("Add", {"name": "add"}, ("conv_a", "conv_b")),
                            LayerEntry("Flatten", {"name": "flatten"}),
                            LayerEntry("Dense", {"name": "dense", "units": 10})])
    return doc


def built(doc):
    model = doc.build_model()
    model.build()
    return model


def train(doc) -> dict:
    """Attach weights of the document's own model (untrained: the shapes are what matter)."""
    weights = encode_weights(built(doc))
    doc.set_trained_weights(weights)
    return weights


def attach_weights(doc) -> dict:
    """Weights in the file form for every weight the report shows (also while a block is unused,
    when no model can be built); the arrays' bytes do not matter to the document."""
    weights = {"encoding": "base64-float32-le",
               "layers": {row.name: [{"name": spec.name, "shape": list(spec.shape), "data": ""}
                                     for spec in row.inference.weights]
                          for row in doc.report.rows if row.inference.weights}}
    doc.set_trained_weights(weights)
    assert doc.trained_weights is weights
    return weights


def state(doc):
    """Everything an undo must restore: entries (configs and inbound), names, links, weights."""
    return (doc.input_shape, doc.entries, doc.names, doc.graph_inbound, doc.trained_weights,
            [(r.output_shape, r.params, r.error) for r in doc.report.rows])


class Events:
    def __init__(self, doc):
        self.items = []
        for name in ("layer_inserted", "layer_removed", "layer_moved", "layer_changed", "graph_changed",
                     "weights_dropped"):
            getattr(doc, name).connect(lambda *args, n=name: self.items.append((n, *args)))

    def names(self):
        return [item[0] for item in self.items]


# --- reading -----------------------------------------------------------------------------------


def test_a_stack_is_linear_with_no_inbound_names():
    doc = stack_document()
    assert doc.is_linear
    assert all(entry.inbound == () for entry in doc.entries)
    assert doc.graph_inbound == ((-1,), (0,), (1,), (2,), (3,))
    assert doc.report.inbound == doc.graph_inbound
    assert doc.consumers(-1) == (0,) and doc.consumers(1) == (2,)
    assert doc.straight_run(2) == (0, 4)


def test_a_branching_document_resolves_names_to_rows():
    doc = branch_document()
    assert not doc.is_linear
    assert doc.graph_inbound == ((-1,), (-1,), (0, 1), (2,), (3,))
    assert doc.consumers(-1) == (0, 1)
    assert doc.row_named("conv_b") == 1 and doc.row_named("input_layer") == -1
    rows = doc.report.rows
    assert rows[2].input_shapes == ((None, 12, 12, 4), (None, 12, 12, 4))
    assert rows[2].output_shape == (None, 12, 12, 4)
    assert doc.report.ok


def test_reset_writes_links_canonically():
    """An inbound that only repeats "the entry before" is dropped; a named source keeps its name."""
    doc = PipelineDocument()
    doc.reset((4,), [LayerEntry("Dense", {"units": 3}, ("input_layer",)),
                     LayerEntry("Dense", {"units": 2}, ("dense",))])
    assert [e.inbound for e in doc.entries] == [(), ()]
    assert doc.is_linear


# --- every command: one undo step restoring the exact document ------------------------------------


GRAPH_EDITS = {
    "insert-after-fork": (branch_document, lambda d: InsertAfterCommand(d, -1, "BatchNormalization")),
    "insert-positional": (branch_document, lambda d: InsertLayerCommand(d, 1, "Dropout", {"rate": 0.5})),
    "remove-branch-block": (branch_document, lambda d: RemoveLayerCommand(d, 1)),
    "remove-merge": (branch_document, lambda d: RemoveLayerCommand(d, 2)),
    "duplicate": (branch_document, lambda d: duplicate_layer_command(d, 0)),
    "connect-to-merge": (lambda: _with_third_branch(), lambda d: ConnectCommand(d, 2, 3)),
    "connect-replaces-input": (branch_document, lambda d: ConnectCommand(d, 0, 1)),
    "connect-reorders": (branch_document, lambda d: ConnectCommand(d, 1, 0)),
    "disconnect": (branch_document, lambda d: DisconnectCommand(d, 1, 2)),
    "insert-merge": (stack_document, lambda d: InsertMergeCommand(d, 1, 2, "Concatenate")),
    "wrap-identity": (stack_document, lambda d: WrapResidualCommand(d, 2, 2)),
    "wrap-projection": (stack_document, lambda d: WrapResidualCommand(d, 0, 1)),
    "rename": (branch_document, lambda d: RenameLayerCommand(d, 0, "left")),
    "set-config-rename": (branch_document,
                          lambda d: SetLayerConfigCommand(d, 1, {"name": "right", "filters": 4, **SAME})),
    "move-in-run": (stack_document, lambda d: MoveLayerCommand(d, 2, 0)),
    "move-in-graph-run": (branch_document, lambda d: MoveLayerCommand(d, 4, 3)),
}


def _with_third_branch() -> PipelineDocument:
    """branch_document plus conv_c (row 2) on the input, not used yet."""
    doc = branch_document()
    entries = list(doc.entries)
    entries.insert(2, LayerEntry("Conv2D", {"name": "conv_c", "filters": 4, **SAME}, ("input_layer",)))
    doc.reset(doc.input_shape, entries)
    return doc


@pytest.mark.parametrize("name", list(GRAPH_EDITS))
def test_each_graph_edit_is_one_step_and_undo_restores_exactly(name, stack):
    make_doc, make_command = GRAPH_EDITS[name]
    doc = make_doc()
    attach_weights(doc)
    before = state(doc)
    stack.push(make_command(doc))
    assert stack.count() == 1
    after = state(doc)
    assert after != before
    stack.undo()
    assert state(doc) == before
    stack.redo()
    assert state(doc) == after
    stack.undo()
    assert state(doc) == before


def test_a_refused_edit_raises_before_anything_is_pushed(stack):
    doc = branch_document()
    before = state(doc)
    with pytest.raises(ConfigError, match="loop"):
        ConnectCommand(doc, 3, 0)  # flatten is fed (through add) by conv_a
    with pytest.raises(ConfigError, match="only input"):
        DisconnectCommand(doc, 2, 3)
    with pytest.raises(ConfigError, match="does not feed"):
        DisconnectCommand(doc, 0, 4)
    with pytest.raises(ConfigError, match="already feeds"):
        ConnectCommand(doc, 0, 2)
    with pytest.raises(ConfigError, match="itself"):
        ConnectCommand(doc, 2, 2)
    assert stack.count() == 0 and state(doc) == before


# --- what each edit does ------------------------------------------------------------------------


def test_insert_after_a_fork_takes_over_all_its_consumers(stack):
    doc = branch_document()
    command = InsertAfterCommand(doc, -1, "BatchNormalization")
    stack.push(command)
    assert command.index == 0
    assert doc.names[0] == "batch_normalization"
    assert doc.graph_inbound[:3] == ((-1,), (0,), (0,))  # conv_a and conv_b now read the new block
    assert doc.entry(2).inbound == ("batch_normalization",)
    assert doc.consumers(-1) == (0,)


def test_inserting_into_a_graph_renames_no_existing_block(stack):
    doc = stack_document()
    stack.push(WrapResidualCommand(doc, 2, 2))
    names = doc.names
    stack.push(InsertLayerCommand(doc, 0, "Conv2D", {"filters": 1, **SAME}))
    assert doc.names[1:] == names  # the new block got a fresh name, not conv2d
    assert doc.names[0] not in names
    assert doc.report.ok


def test_connect_to_a_merge_appends_an_input():
    doc = _with_third_branch()
    doc.connect(2, 3)
    assert doc.entry(3).inbound == ("conv_a", "conv_b", "conv_c")
    assert doc.report.rows[3].input_shapes == ((None, 12, 12, 4),) * 3
    assert doc.report.ok


def test_connect_to_a_single_input_block_replaces_its_input():
    doc = branch_document()
    doc.connect(0, 1)  # conv_b now reads conv_a
    assert doc.entry(1).inbound == ()
    assert doc.graph_inbound[1] == (0,)
    assert doc.report.ok


def test_connect_from_below_reorders_rows_and_says_so():
    doc = branch_document()
    events = Events(doc)
    doc.connect(1, 0)  # conv_b (row 1) now feeds conv_a (row 0): conv_a must come after it
    assert doc.names[:3] == ("conv_b", "conv_a", "add")
    assert doc.graph_inbound[:3] == ((-1,), (0,), (1, 0))
    assert ("layer_moved", 1, 0) in events.items or ("layer_moved", 0, 1) in events.items
    assert events.names()[-1] == "graph_changed"
    assert doc.report.rows[2].output_shape == (None, 12, 12, 4)


def test_a_loop_is_refused_with_a_clear_message():
    doc = branch_document()
    problem = doc.connect_problem(2, 0)
    assert problem == ("cannot connect 'add' to 'conv_a': 'conv_a' already feeds 'add', so the link would make "
                       "a loop; a network must flow one way")
    assert doc.connect_problem(-1, 2) is None  # the input may feed the merge too


def test_disconnect_leaves_the_merge_with_one_input():
    doc = branch_document()
    doc.disconnect(1, 2)
    assert doc.entry(2).inbound == ("conv_a",)
    assert doc.graph_inbound[2] == (0,)
    row = doc.report.rows[1]
    assert row.status == "error" and "its output is not used" in row.error


def test_insert_merge_on_a_link(stack):
    doc = stack_document()
    command = InsertMergeCommand(doc, 1, 2, "Concatenate")
    stack.push(command)
    assert command.index == 2
    assert doc.entry(2).class_name == "Concatenate"
    assert doc.graph_inbound[2] == (1,)  # the link's source is its first input
    assert doc.graph_inbound[3] == (2,)  # and it feeds the link's target
    with pytest.raises(ConfigError, match="does not feed"):
        InsertMergeCommand(doc, 0, 3, "Add")


def test_a_one_input_block_dropped_on_a_skip_sits_on_the_skip_only(stack):
    doc = branch_document()
    stack.push(InsertOnLinkCommand(doc, -1, 1, "BatchNormalization"))  # on input -> conv_b only
    assert doc.entry(1).class_name == "BatchNormalization"
    assert doc.graph_inbound[:3] == ((-1,), (-1,), (1,))  # conv_a still reads the input itself
    assert doc.report.ok


def test_wrap_without_projection_adds_the_skip_an_add_and_relu():
    doc = stack_document()
    rows = doc.wrap_residual(2, 2)  # conv2d_2 keeps 14x14x4
    assert rows == (3, 4)
    add, relu = doc.entry(3), doc.entry(4)
    assert (add.class_name, add.inbound) == ("Add", ("conv2d_2", "conv2d_1"))  # main path first, then the skip
    assert (relu.class_name, relu.config["activation"], relu.inbound) == ("Activation", "relu", ())
    assert doc.graph_inbound[5] == (4,)  # flatten now reads the relu
    assert doc.report.ok and doc.report.output_shape == (None, 10)


def test_wrap_with_projection_takes_filters_and_strides_from_the_report():
    doc = stack_document()
    assert doc.report.rows[0].input_shape == (None, 28, 28, 1)
    assert doc.report.rows[1].output_shape == (None, 14, 14, 4)
    rows = doc.wrap_residual(0, 1)
    assert rows == (2, 3, 4)
    projection = doc.entry(2)
    assert projection.class_name == "Conv2D"
    assert projection.inbound == ("input_layer",)
    assert {k: v for k, v in projection.config.items() if k != "name"} == {"filters": 4, "kernel_size": 1,
                                                                           "strides": 2}
    assert doc.report.rows[2].output_shape == (None, 14, 14, 4)
    assert doc.entry(3).inbound == ("conv2d_1", projection.config["name"])
    assert doc.report.ok


def test_wrap_refuses_what_a_1x1_projection_cannot_match_and_a_non_straight_selection():
    doc = PipelineDocument()
    doc.reset((28, 28, 1), [LayerEntry("Conv2D", {"filters": 4, "kernel_size": 3}),  # 26x26
                            LayerEntry("Flatten", {}), LayerEntry("Dense", {"units": 10})])
    assert "no 1x1 convolution stride maps 28 to 26" in doc.wrap_problem(0, 0)
    assert "image-shaped" in doc.wrap_problem(0, 2)
    branched = branch_document()
    assert "straight run" in branched.wrap_problem(1, 2)


def test_delete_gives_consumers_the_input_and_a_merge_one_input_fewer():
    doc = branch_document()
    doc.insert_after(0, "Dropout", {"name": "drop", "rate": 0.1})  # conv_a -> drop -> add
    doc.remove_layer(1)
    assert doc.entry(2).inbound == ("conv_a", "conv_b")
    doc.connect(-1, 2)  # the input feeds add too: add(conv_a, conv_b, input_layer)
    doc.remove_layer(0)  # conv_a's input is the input, which already feeds add
    assert doc.entry(1).inbound == ("input_layer", "conv_b")  # once, not twice
    assert doc.graph_inbound[1] == (-1, 0)


def test_move_in_a_graph_only_along_a_straight_run():
    doc = branch_document()
    assert doc.straight_run(3) == (3, 4)  # flatten -> dense (add has two inputs: it stays)
    assert doc.straight_run(0) == (0, 0)
    assert "cannot move: it joins or feeds other branches" in doc.move_problem(2, 3)  # add
    assert "cannot move" in doc.move_problem(0, 1)  # conv_a: a branch of one block
    assert doc.move_problem(4, 1) == ("'dense' can only move along its own branch (rows 4 to 5); to place it "
                                      "elsewhere, delete it and add it there")
    with pytest.raises(ConfigError, match="own branch"):
        MoveLayerCommand(doc, 4, 0)


def test_rename_updates_every_link_in_one_step(stack):
    doc = branch_document()
    events = Events(doc)
    stack.push(RenameLayerCommand(doc, 1, "right"))
    assert doc.entry(2).inbound == ("conv_a", "right")
    assert doc.report.ok
    assert ("layer_changed", 1) in events.items and ("layer_changed", 2) in events.items
    assert stack.count() == 1
    stack.undo()
    assert doc.entry(2).inbound == ("conv_a", "conv_b") and doc.entry(1).config["name"] == "conv_b"
    with pytest.raises(ConfigError, match="already used"):
        RenameLayerCommand(doc, 1, "conv_a")
    with pytest.raises(ConfigError, match="cannot be empty"):
        RenameLayerCommand(doc, 1, " ")


def test_graph_changed_only_when_links_change():
    doc = branch_document()
    events = Events(doc)
    doc.set_layer_config(4, {"name": "dense", "units": 5})
    assert "graph_changed" not in events.names()
    doc.disconnect(0, 2)
    assert events.names().count("graph_changed") == 1


# --- trained weights ------------------------------------------------------------------------------


def test_an_edit_keeping_every_weight_shape_keeps_the_weights(stack):
    doc = stack_document()
    weights = train(doc)
    stack.push(WrapResidualCommand(doc, 2, 2))  # Add and Activation hold no weights, shapes unchanged
    assert doc.trained_weights is weights


def test_a_renamed_block_takes_its_weights_along(stack):
    doc = branch_document()
    weights = train(doc)
    events = Events(doc)
    stack.push(RenameLayerCommand(doc, 1, "right"))
    kept = doc.trained_weights
    assert kept["layers"]["right"] is weights["layers"]["conv_b"] and "conv_b" not in kept["layers"]
    arrays, original = decode_weights(built(doc), kept), decode_weights(built(branch_document()), weights)
    assert len(arrays) == len(original) and all(np.array_equal(a, b) for a, b in zip(arrays, original))
    assert "weights_dropped" not in events.names()
    stack.undo()
    assert doc.trained_weights is weights


def test_a_projection_drops_the_weights_and_names_the_new_layer(stack):
    doc = stack_document()
    weights = train(doc)
    events = Events(doc)
    stack.push(WrapResidualCommand(doc, 0, 1))
    dropped = [item[1] for item in events.items if item[0] == "weights_dropped"]
    assert dropped == [f"conv2d to conv2d_1 were wrapped in a residual block, which added {doc.names[2]}'s weights"]
    stack.undo()
    assert doc.trained_weights is weights


def test_a_skip_that_changes_a_dense_input_drops_the_weights_and_says_why(stack):
    doc = branch_document()
    weights = train(doc)
    events = Events(doc)
    stack.push(InsertMergeCommand(doc, 2, 3, "Concatenate"))  # concatenate(add) -> flatten -> dense
    assert doc.trained_weights is not None  # one input: same shape so far (an error row, weights kept)
    stack.push(ConnectCommand(doc, 0, 3))  # concatenate(add, conv_a): 8 channels into flatten/dense
    dropped = [item[1] for item in events.items if item[0] == "weights_dropped"]
    assert dropped == ["'conv_a' was connected to 'concatenate', which changed dense's kernel from "
                       "(576, 10) to (1152, 10)"]
    assert doc.trained_weights is None
    stack.undo()
    stack.undo()
    assert doc.trained_weights is weights


# --- files and models -----------------------------------------------------------------------------


def test_a_graph_project_saves_and_opens_unchanged(tmp_path):
    doc = stack_document()
    doc.wrap_residual(0, 1)
    data = doc.to_dict()
    assert data["layers"][3]["inbound"] == ["conv2d_1", doc.names[2]]
    assert "inbound" not in data["layers"][1]  # fed by the entry before: not written
    reopened = PipelineDocument()
    reopened.load_text(doc.to_json())
    # configs come back compact (defaults dropped) and named, as the engine writes them
    assert [(e.class_name, e.inbound) for e in reopened.entries] == [(e.class_name, e.inbound) for e in doc.entries]
    assert reopened.names == doc.names
    assert reopened.graph_inbound == doc.graph_inbound
    assert [(r.output_shape, r.params) for r in reopened.report.rows] == \
        [(r.output_shape, r.params) for r in doc.report.rows]
    assert reopened.to_dict() == data


def test_the_file_form_equals_the_engines(tmp_path):
    from visualcnn.engine.model_io import model_to_dict, read_model_file

    doc = branch_document()
    model = read_model_file(doc.to_json()).model
    assert model_to_dict(model) == doc.to_dict()


def test_build_model_gives_the_graph_model_with_the_documents_shapes():
    doc = branch_document()
    model = doc.build_model()
    assert [layer.name for layer in model.layers] == list(doc.names)
    assert [tuple(ins) for ins in model.inbound] == list(doc.graph_inbound)
    x = np.random.default_rng(0).random((2, 12, 12, 1), dtype=np.float32)
    assert model.predict(x).shape == (2, 10)
    assert type(stack_document().build_model()).__name__ == "Sequential"


def test_build_model_refuses_a_pipeline_with_an_error():
    doc = branch_document()
    doc.disconnect(1, 2)
    with pytest.raises(ConfigError, match="not used"):
        doc.build_model()


def test_training_worker_trains_a_graph_model(qapp):
    from visualcnn.engine.model_io import compile_from_config
    from visualcnn.engine.training_config import TrainingConfig
    from visualcnn.gui.training_worker import TrainingRequest, TrainingWorker

    doc = branch_document()
    model = doc.build_model()
    compile_from_config(model, TrainingConfig(batch_size=8, epochs=1))
    rng = np.random.default_rng(1)
    x = rng.random((32, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    worker = TrainingWorker(TrainingRequest(model, x, y, x[:8], y[:8], batch_size=8, epochs=1,
                                            probe=x[0, :, :, 0]))
    snapshots, results, errors, finished = [], [], [], []
    worker.snapshot_taken.connect(snapshots.append)
    worker.evaluated.connect(results.append)
    worker.errored.connect(errors.append)
    worker.finished.connect(finished.append)
    worker.run()
    assert errors == [] and finished == [True]
    assert set(snapshots[-1].weights) == set(doc.names)
    assert set(snapshots[-1].activations) >= {"conv_a", "conv_b", "add"}
    assert results[0].probabilities.shape == (8, 10)


def test_a_link_edit_is_an_unsaved_change_until_undone(stack):
    from visualcnn.gui.project_changes import ProjectBaseline

    doc = branch_document()
    baseline = ProjectBaseline.of(doc)
    stack.push(DisconnectCommand(doc, 1, 2))
    assert baseline.changed_parts(doc) == ["the pipeline"]
    stack.undo()
    assert baseline.changed_parts(doc) == []
    stack.push(RenameLayerCommand(doc, 1, "right"))
    assert baseline.describe(doc) == "The pipeline has unsaved changes."


def _check_invariants(doc):
    """Topological order, unique names, canonical links, every named source pinned in its config."""
    names = doc.names
    assert len(set(names)) == len(names)
    for row, (entry, sources) in enumerate(zip(doc.entries, doc.graph_inbound)):
        assert all(-1 <= s < row for s in sources), (row, sources)
        assert (entry.inbound == ()) == (sources == (row - 1,))
        for source_name in entry.inbound:
            assert source_name == doc.input_name or doc.entry(doc.row_named(source_name)).config["name"] == source_name
    reopened = PipelineDocument()
    reopened.reset(doc.input_shape, doc.entries)
    assert reopened.entries == doc.entries  # already canonical


def test_random_edit_sequences_undo_and_redo_exactly(stack):
    """Eighty random edits (each allowed by the document's own checks), then every undo and redo
    lands on exactly the recorded document."""
    rng = np.random.default_rng(11)
    doc = stack_document()
    states = [state(doc)]
    kinds = ["insert", "remove", "connect", "connect", "disconnect", "disconnect", "link", "wrap", "move", "rename",
             "duplicate"]
    pushed = 0
    for _ in range(600):
        if pushed == 80:
            break
        n, kind = len(doc), kinds[rng.integers(len(kinds))]
        a, b = int(rng.integers(-1, n)), int(rng.integers(0, n)) if n else 0
        try:
            if kind == "insert":
                command = InsertLayerCommand(doc, b, ["Dropout", "BatchNormalization", "Activation"][a % 3],
                                             {"rate": 0.1} if a % 3 == 0 else {})
            elif kind == "remove" and n > 2:
                command = RemoveLayerCommand(doc, b)
            elif kind == "connect":  # mostly downwards (always allowed), sometimes upwards (reorder or loop)
                command = ConnectCommand(doc, min(a, b - 1) if rng.random() < 0.7 else a, b)
            elif kind == "disconnect":
                sources = doc.inbound(b)
                command = DisconnectCommand(doc, sources[int(rng.integers(len(sources)))], b)
            elif kind == "link":
                command = InsertOnLinkCommand(doc, a, b, ["Add", "Dropout"][b % 2])
            elif kind == "wrap" and a >= 0:
                command = WrapResidualCommand(doc, min(a, b), max(a, b))
            elif kind == "move" and a >= 0:
                command = MoveLayerCommand(doc, a, b)
            elif kind == "rename" and n:
                command = RenameLayerCommand(doc, b, f"block_{pushed}")
            elif kind == "duplicate" and n:
                command = duplicate_layer_command(doc, b)
            else:
                continue
        except ConfigError:
            continue  # refused: nothing pushed, nothing changed
        assert state(doc) == states[-1]
        stack.push(command)
        if stack.count() == pushed:  # an edit that changed nothing leaves no step
            continue
        pushed += 1
        _check_invariants(doc)
        states.append(state(doc))
    assert pushed == 80
    assert not doc.is_linear
    for expected in reversed(states[:-1]):
        stack.undo()
        assert state(doc) == expected
    for expected in states[1:]:
        stack.redo()
        assert state(doc) == expected


def test_typing_a_name_is_one_step_and_its_undo_restores_every_link(stack):
    doc = branch_document()
    before = state(doc)
    for name in ("r", "ri", "rig", "right"):  # typed within MERGE_SECONDS
        stack.push(RenameLayerCommand(doc, 1, name))
    assert stack.count() == 1
    assert doc.entry(2).inbound == ("conv_a", "right")
    stack.undo()
    assert state(doc) == before
    stack.redo()
    assert doc.entry(2).inbound == ("conv_a", "right") and doc.names[1] == "right"


@pytest.mark.parametrize("source,target", [(0, 4), (4, 0), (3, 2), (1, 3)])
def test_moving_a_block_emits_one_move_of_that_block(source, target):
    """Views follow the moved block: the steps move it, never the blocks around it."""
    doc = stack_document()
    events = Events(doc)
    doc.move_layer(source, target)
    assert [item for item in events.items if item[0] != "graph_changed"] == [("layer_moved", source, target)]
