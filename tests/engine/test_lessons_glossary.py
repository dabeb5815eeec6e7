"""The glossary: one or two plain sentences for every technical word on screen, found loosely."""

import pytest

from visualcnn.engine.glossary import lookup, read_glossary, term, terms
from visualcnn.engine.layers import ConfigError

# The words issue 14 names, as the window writes them.
ON_SCREEN = ["None", "valid", "same", "padding", "stride", "strides", "kernel_size", "filters", "feature map",
             "receptive field", "epoch", "batch", "batch_size", "loss", "cross-entropy",
             "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "logits", "softmax",
             "non-trainable parameters", "Param #", "MACs", "Dropout", "pooling", "learning_rate", "optimizer",
             "validation", "overfitting", "accuracy", "residual connection", "depthwise separable convolution",
             "BatchNormalization", "Grad-CAM", "one-hot", "dilation_rate"]


@pytest.mark.parametrize("word", ON_SCREEN)
def test_every_word_on_screen_has_one_or_two_plain_sentences(word):
    text = term(word)
    sentences = [s for s in text.replace("e.g.", "eg").replace("x.", "x").split(". ") if s.strip()]
    assert 1 <= len(sentences) <= 3 and len(text) <= 300, text
    assert text.endswith((".", ".)", "?", "'.")) and "\n" not in text


def test_names_are_matched_loosely_and_aliases_find_their_entry():
    assert lookup("Batch-Size") == lookup("batch_size") == lookup("BATCH SIZE") == "batch size"
    assert lookup("None") == "none in a shape"
    assert lookup("kernels") == "kernel"
    assert term("gradcam") == term("Grad-CAM")
    assert "moving mean and variance" in term("BN non-trainable parameters")


def test_an_unknown_word_is_a_one_line_key_error_with_close_terms():
    with pytest.raises(KeyError, match="no term 'strid'; did you mean 'stride'"):
        term("strid")
    assert lookup("flux capacitor") is None


def test_terms_lists_every_entry_once():
    names = terms()
    assert len(names) == len(set(names)) >= 70
    assert names[0] == "none in a shape"


def test_a_broken_glossary_file_names_the_entry():
    with pytest.raises(ConfigError, match="term 'x' needs text"):
        read_glossary('[terms.x]\naliases = ["y"]\n')
    with pytest.raises(ConfigError, match="'b' names both 'a' and 'b'"):
        read_glossary('[terms.a]\ntext = "A."\naliases = ["b"]\n[terms.b]\ntext = "B."\n')
