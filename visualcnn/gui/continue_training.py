"""The Train tab's "Continue training": the same exact resume as `visualcnn train --resume`.

When a run ends (finished, stopped between two batches, or stopped early by a callback)
the engine's training state is captured into the project's "resume" section
(engine/resume.py capture: optimizer, epoch and batch reached, data order, random layers'
generators, callbacks' counters, the digest of the weights). Saving the project keeps it.

Continue builds the network from the pipeline, gives it the project's trained weights and
asks the engine's recipe for a continued run (recipe.prepare_run(resume=...)): the engine
refuses in one line when the state does not fit (other weights, other data or batch size).
A tab without a document (tests, benchmarks) keeps the state and weights itself.
"""

from __future__ import annotations

import weakref

from ..engine import resume as resume_state
from ..engine.model_io import decode_weights, encode_weights
from ..engine.recipe import prepare_run

SECTION = "resume"


class ContinueTraining:
    def __init__(self, tab):
        # Held weakly: a reference back to the tab would keep a dropped tab for the cyclic
        # collector, which may free it inside its own paint event (see gui/cell_tracer.py).
        self._tab_ref = weakref.ref(tab)
        self._own: tuple[dict, dict] | None = None  # (section, encoded weights) of an unbound tab
        self._watched = None

    @property
    def _tab(self):
        return self._tab_ref()

    def _document(self):
        tab = self._tab
        document = tab._document if tab is not None else None
        if document is not None and document is not self._watched:
            # The window gives the document the run's weights after the run ends (and Undo
            # takes them back): Continue follows them and the saved state.
            self._watched = document
            document.weights_changed.connect(self.refresh)
            document.section_changed.connect(lambda key: self.refresh() if key == SECTION else None)
        return document

    def section(self) -> dict | None:
        document = self._document()
        if document is not None:
            return document.section(SECTION)
        return self._own[0] if self._own else None

    def _weights(self) -> dict | None:
        document = self._document()
        if document is not None:
            return document.trained_weights
        return self._own[1] if self._own else None

    def keep(self, model, run, config) -> None:
        """After a run: the state it can be continued from (none after a failure)."""
        if model is None or not model.built or run is None or getattr(run, "position", None) is None:
            return
        if run.position.rng is None:  # stopped before its first batch: nothing to continue
            return
        section = resume_state.capture(model, run, config)
        # the images the run used (before the validation split): Continue uses them again,
        # also after the project is reopened and the tab's count is back to its default
        section["images"] = int(run.train_examples + run.val_examples)
        document = self._document()
        if document is not None:
            document.set_section(SECTION, section)
        else:
            self._own = (section, encode_weights(model))
        self.refresh()

    def restore_image_count(self) -> None:
        """Show (and use) the image count of the run being continued."""
        images = (self.section() or {}).get("images")
        if isinstance(images, int) and images > 0:
            self._tab.controls.train_images.setValue(images)

    def prepare(self, model, config, data, limit: int):
        """The continued run of `model` (fresh from the pipeline); ValueError says why not."""
        section, weights = self.section(), self._weights()
        if section is None:
            raise ValueError("there is no saved training state: train once with Start, then Continue goes on "
                             "from where that run ended")
        if weights is None:
            raise ValueError("the project has no trained weights for this network (an edit dropped them): "
                             "Start a new run")
        model.build(seed=config.seed)
        model.set_weights(decode_weights(model, weights))
        return prepare_run(model, config, data, limit=limit, resume=section)

    def refresh(self) -> None:
        """Continue is offered when a saved state and trained weights are both there."""
        if self._tab is None:  # the tab is gone; the document's signal outlived it
            return
        section = self.section()
        can = section is not None and self._weights() is not None
        why = "" if can else ("Train once first: Continue goes on from the end of a run" if section is None else
                              "The trained weights this state belongs to are gone (the network was edited)")
        if section is not None and can:
            done = section.get("epochs_done", 0)
            batches = section.get("batches_done", 0)
            where = f"epoch {done + 1}, batch {batches + 1}" if batches else f"epoch {done + 1}"
            why = f"Continue from {where}: the same weights as one longer run would give"
        self._tab.controls.callbacks.set_can_continue(can, why)
