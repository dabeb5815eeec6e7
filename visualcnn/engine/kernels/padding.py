"""Pure-python output-size and padding arithmetic shared by the kernels (no arrays).

Keras/TensorFlow "same": total = max((out-1)*s + (k-1)*d + 1 - in, 0), with the odd
extra pixel at the END (pad_before = total // 2).
"""

__all__ = ["valid_output", "same_padding", "conv_transpose_output"]


def valid_output(in_size, k, s=1, d=1):
    """Output length of a "valid" conv/pool window: floor((in - d*(k-1) - 1) / s) + 1.

    Raises ValueError when the result would be zero or negative.
    """
    out = (in_size - d * (k - 1) - 1) // s + 1
    if out <= 0:
        raise ValueError(
            f"window of size {k} (dilation {d}) is larger than the input size {in_size} "
            f"(valid padding): computed output size would be {out}"
        )
    return out


def same_padding(in_size, k, s=1, d=1):
    """("same" padding) -> (out, pad_before, pad_after); out = ceil(in / s)."""
    if in_size <= 0:
        raise ValueError(f"input size must be positive, got {in_size}")
    out = (in_size - 1) // s + 1
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    before = total // 2
    return out, before, total - before


def conv_transpose_output(in_size, k, s=1, d=1, padding="valid"):
    """Conv2DTranspose output length and the pad_before the kernels need.

    Returns (out, pad_before): the transposed conv is the input-gradient of a conv that
    maps ``out`` -> ``in_size`` with the same k, s, d and padding.
    """
    k_eff = (k - 1) * d + 1
    if padding == "valid":
        return (in_size - 1) * s + max(k_eff, s), 0
    if padding == "same":
        out = in_size * s
        _, before, _ = same_padding(out, k, s, d)
        return out, before
    raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
