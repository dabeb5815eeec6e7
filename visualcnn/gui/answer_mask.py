"""What the window keeps hidden while a lesson's predict step waits for the student's answer.

A predict step about the model as it stands (no `change`) asks for a number the window
already shows: the block card, the Summary table and the Inspector's derivation would give
it away while the student thinks. The Lessons panel puts the asked (layer, quantity) here
while the step is shown and unanswered and clears it the moment the step is answered,
revealed, skipped or left, or the lesson closed; the views show "?" for exactly that
quantity and draw again on `changed`.

A predict step WITH a change asks about the model after the change, so the numbers on
screen are not the answer: nothing is masked for it (the panel never sets a pair then).

One mask per document (a child QObject of it): each window has its own, and a view that
has the document reaches it through `answer_mask(document)` without knowing the panel.

What each quantity hides (the views read it through AnswerMask.masked / hides_*):
  output_shape L   L's shape on its card (and the bytes of its output beside it), L's Output
                   Shape in the Summary, the shape lines of L's derivation (card tooltip and
                   Inspector) and its MACs / activation lines, which multiply the shape out;
                   the status line's "output" when L is the last layer, and the Summary's
                   Total MACs and activation memory lines (for a one-layer model they are
                   L's shape multiplied out)
  params L         L's params on its card (and the weights' bytes), its Param # in the
                   Summary, the "params = ..." line of its derivation, and the totals (Summary
                   and status line): the total minus the other rows is the answer by one
                   subtraction, and for a model with one layer holding weights the total IS
                   the answer, so every total hides while a layer's params are asked
  total_params     the Summary's totals lines and the status line's parameter count (the
                   per-layer counts stay: adding them up is how the total is predicted)
  receptive_field L  L's receptive field on its card, in its tooltip and in the Inspector
  macs L           L's MACs on its card and tooltip, its Summary row's cost tooltip, and the
                   Summary's Total MACs line
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

MASK = "?"
MASK_TIP = "Predict it in the Lessons panel first: it shows again once you have answered."


class AnswerMask(QObject):
    """The (layer name, quantity) pairs hidden right now (layer None for total_params)."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pairs: frozenset[tuple[str | None, str]] = frozenset()

    @property
    def pairs(self) -> frozenset:
        return self._pairs

    def set_pairs(self, pairs) -> None:
        pairs = frozenset(pairs)
        if pairs != self._pairs:
            self._pairs = pairs
            self.changed.emit()

    def clear(self) -> None:
        self.set_pairs(())

    def masked(self, layer: str | None, quantity: str) -> bool:
        return (layer, quantity) in self._pairs

    def quantities(self, layer: str | None) -> frozenset[str]:
        """The quantities hidden for one layer (the card and the Inspector ask once per block)."""
        return frozenset(q for name, q in self._pairs if name == layer)

    def hides_totals(self) -> bool:
        """The parameter totals give the answer away (see the module's docstring)."""
        return any(q in ("params", "total_params") for _name, q in self._pairs)

    def hides_total_macs(self) -> bool:
        """The Summary's Total MACs: a layer's MACs are its output's sizes multiplied out too."""
        return any(q in ("macs", "output_shape") for _name, q in self._pairs)

    def hides_total_activations(self) -> bool:
        """The Summary's activation memory: every output's h*w*c * 4 bytes, summed."""
        return any(q == "output_shape" for _name, q in self._pairs)


def answer_mask(document: QObject) -> AnswerMask:
    """The document's mask (made on first ask; it lives and dies with the document)."""
    mask = document.findChild(AnswerMask, "answerMask")
    if mask is None:
        mask = AnswerMask(document)
        mask.setObjectName("answerMask")
    return mask


def hidden_line(what: str) -> str:
    """The line shown in place of a hidden quantity's working: 'params = ? (predict it ...)'."""
    return f"{what} = {MASK} (predict it in the Lessons panel first)"


def masked_derivation(lines, quantities) -> list[str]:
    """A block's derivation lines (with its MACs and activation lines) with the hidden
    quantities' lines replaced by one "?" line each; the others stay (a params question still
    shows how the shape is worked out). The receptive field is not in these lines: the card
    and the Inspector leave its sentence out themselves (hidden_line("receptive field"))."""
    if not quantities:
        return list(lines)
    out, said = [], set()

    def hide(what: str) -> None:
        if what not in said:
            said.add(what)
            out.append(hidden_line(what))

    for line in lines:
        text = line.lstrip()
        if "params" in quantities and text.startswith("params"):
            hide("params")
        elif "output_shape" in quantities and not text.startswith("params") and not text.startswith("input"):
            hide("output shape")  # out_h, out_w, channels, units, output shape: the shape worked out
        elif "macs" in quantities and text.startswith("MACs"):
            hide("MACs")
        elif "output_shape" in quantities and (text.startswith("MACs") or text.startswith("activation")):
            hide("output shape")  # they multiply the output's sizes out
        else:
            out.append(line)
    return out


__all__ = ["AnswerMask", "answer_mask", "hidden_line", "masked_derivation", "MASK", "MASK_TIP"]
