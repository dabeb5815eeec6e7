"""MNIST / Fashion-MNIST loading: the published facts, the cache, and every error.

Damage is only ever done to copies in tmp_path; resources/ is read-only here.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from visualcnn import resources
from visualcnn.engine import datasets
from visualcnn.engine.datasets import (
    FASHION_CLASS_NAMES,
    IDX_FILE_NAMES,
    MNIST_CLASS_NAMES,
    MNIST_SHA256,
    DatasetError,
    fashion_mnist_available,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    parse_idx,
    read_idx,
)

MNIST_DIR = resources.resource_dir() / "mnist"

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VISUALCNN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return load_mnist()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty cache directory for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("VISUALCNN_CACHE_DIR", str(d))
    return d


def cache_files(cache_root: Path) -> list[Path]:
    return sorted((cache_root / "datasets").glob("*.npz"))


def idx_images(images: np.ndarray, magic: int = 2051) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">iiii", magic, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 2049) -> bytes:
    return struct.pack(">ii", magic, len(labels)) + labels.astype(np.uint8).tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


def make_fake_dataset(directory: Path, n_train: int = 6, n_test: int = 4, seed: int = 0):
    """Four small structurally valid files in the MNIST layout."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )
    for name, a in zip(IDX_FILE_NAMES, arrays):
        write_gz(directory / name, idx_images(a) if a.ndim == 3 else idx_labels(a))
    return arrays


def touch_later(path: Path) -> None:
    """Move mtime a second on, as any real edit would: the cache key reads size and
    mtime, and a filesystem with coarse timestamps could otherwise give the same."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def copy_mnist(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILE_NAMES:
        shutil.copyfile(MNIST_DIR / name, directory / name)
    return directory


# --------------------------------------------------------------------------------
# The facts from resources/mnist/README.md


def test_shapes_and_dtypes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28)
    assert y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28)
    assert y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
        assert a.flags.c_contiguous and a.flags.writeable
    assert x_train.min() == 0 and x_train.max() == 255


def test_first_ten_labels(mnist):
    (_, y_train), (_, y_test) = mnist
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_label_counts(mnist):
    (_, y_train), (_, y_test) = mnist
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS


def test_checksum_table_matches_readme():
    text = (MNIST_DIR / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\|\s*([a-z0-9-]+-ubyte)\s*\|\s*([0-9a-f]{64})\s*\|", text, re.M))
    assert table == MNIST_SHA256


def test_readme_carries_attribution_and_license():
    text = (MNIST_DIR / "README.md").read_text(encoding="utf-8")
    for needle in ("Yann LeCun", "Corinna Cortes", "Burges", "NIST",
                   "Creative Commons Attribution-Share Alike 3.0"):
        assert needle in text


def test_bundled_files_present():
    for name in IDX_FILE_NAMES:
        assert (MNIST_DIR / name).is_file()


def test_class_names():
    assert MNIST_CLASS_NAMES == tuple("0123456789")
    assert len(FASHION_CLASS_NAMES) == 10 and FASHION_CLASS_NAMES[9] == "Ankle boot"
    assert datasets.class_names("Fashion-MNIST") == FASHION_CLASS_NAMES


# --------------------------------------------------------------------------------
# Cache


def test_cache_hit_returns_equal_arrays_without_reading_the_gz(cache, monkeypatch):
    first = load_mnist()
    assert len(cache_files(cache)) == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("the .gz files were decoded again despite a cache")

    monkeypatch.setattr(datasets, "_read_dataset", must_not_run)
    second = load_mnist()
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_cache_disabled_by_flag(cache):
    load_mnist(cache=False)
    assert cache_files(cache) == []


def test_cache_disabled_by_empty_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VISUALCNN_CACHE_DIR", "")
    assert datasets.cache_dir() is None
    arrays = make_fake_dataset(tmp_path / "fake")
    (x_train, _), _ = load_fashion_mnist(tmp_path / "fake")
    np.testing.assert_array_equal(x_train, arrays[0])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "flipped"])
def test_corrupt_cache_is_silently_rebuilt(cache, damage):
    expected = load_mnist()
    (path,) = cache_files(cache)
    blob = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 100)
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # one flipped pixel byte deep inside x_train: only the zip CRC can tell
        pos = len(blob) // 3
        path.write_bytes(blob[:pos] + bytes([blob[pos] ^ 0xFF]) + blob[pos + 1:])
    again = load_mnist()
    np.testing.assert_array_equal(again[0][0], expected[0][0])
    np.testing.assert_array_equal(again[1][1], expected[1][1])
    assert path.read_bytes() == blob  # rebuilt, not left broken


def test_unwritable_cache_dir_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file-not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("VISUALCNN_CACHE_DIR", str(blocker / "cache"))
    (x_train, _), _ = load_mnist()
    assert x_train.shape == (60000, 28, 28)


def test_cache_key_follows_the_source_files(tmp_path, cache):
    src = tmp_path / "fake"
    make_fake_dataset(src, seed=1)
    load_fashion_mnist(src)
    (old,) = cache_files(cache)
    # Same size, new content, new mtime: the old cache must not be served.
    new_arrays = make_fake_dataset(src, seed=2)
    for name in IDX_FILE_NAMES:
        touch_later(src / name)
    (x_train, y_train), _ = load_fashion_mnist(src)
    np.testing.assert_array_equal(x_train, new_arrays[0])
    np.testing.assert_array_equal(y_train, new_arrays[1])
    (new,) = cache_files(cache)  # the stale one was removed
    assert new != old


def test_changed_source_after_caching_is_rechecked(tmp_path, cache):
    src = copy_mnist(tmp_path / "mnist")
    load_mnist(src)
    labels = src / IDX_FILE_NAMES[1]
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[8] = (data[8] + 1) % 10  # a valid label, but not MNIST's
    write_gz(labels, bytes(data))
    touch_later(labels)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_mnist(src)


# --------------------------------------------------------------------------------
# Errors: each names the file and the problem


def test_missing_file(tmp_path, cache):
    src = copy_mnist(tmp_path / "mnist")
    (src / IDX_FILE_NAMES[3]).unlink()
    with pytest.raises(DatasetError, match="missing file") as info:
        load_mnist(src)
    assert IDX_FILE_NAMES[3] in str(info.value)


def test_missing_directory(tmp_path, cache):
    with pytest.raises(DatasetError, match="missing file"):
        load_mnist(tmp_path / "nowhere")


def test_checksum_mismatch(tmp_path, cache):
    src = copy_mnist(tmp_path / "mnist")
    labels = src / IDX_FILE_NAMES[3]
    y = read_idx(labels)
    y[0] = (y[0] + 1) % 10
    write_gz(labels, idx_labels(y))
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        load_mnist(src)
    assert IDX_FILE_NAMES[3] in str(info.value)
    assert cache_files(cache) == []


def test_corrupt_gzip_stream(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    blob = bytearray((MNIST_DIR / path.name).read_bytes())
    for i in range(100, 200):
        blob[i] ^= 0x5A
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match="corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    blob = (MNIST_DIR / path.name).read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="corrupt gzip: truncated") as info:
        read_idx(path)
    assert path.name in str(info.value)


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DatasetError, match="corrupt gzip"):
        read_idx(path)


def test_truncated_payload(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = idx_images(np.zeros((5, 28, 28), np.uint8))
    write_gz(path, data[:-100])
    with pytest.raises(DatasetError, match="truncated") as info:
        read_idx(path)
    assert path.name in str(info.value)


def test_truncated_header(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    write_gz(path, struct.pack(">ii", 2051, 5))
    with pytest.raises(DatasetError, match="truncated header"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    write_gz(path, idx_labels(np.arange(5)) + b"\0\0")
    with pytest.raises(DatasetError, match="2 trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("magic", [0, 2050, 2052, 0x1F8B0808, -1])
def test_wrong_magic(tmp_path, magic):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_gz(path, idx_labels(np.arange(5), magic=magic))
    with pytest.raises(DatasetError, match=f"wrong magic number {magic}") as info:
        read_idx(path)
    assert path.name in str(info.value)


def test_wrong_magic_through_load_mnist(tmp_path, cache):
    src = copy_mnist(tmp_path / "mnist")
    labels = src / IDX_FILE_NAMES[1]
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[:4] = struct.pack(">i", 2052)
    write_gz(labels, bytes(data))
    with pytest.raises(DatasetError, match="wrong magic"):
        load_mnist(src)


def test_labels_and_images_swapped(tmp_path, cache):
    src = tmp_path / "fake"
    make_fake_dataset(src)
    a, b = src / IDX_FILE_NAMES[0], src / IDX_FILE_NAMES[1]
    tmp = src / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    with pytest.raises(DatasetError, match="expected 28x28 images"):
        load_fashion_mnist(src)


def test_count_mismatch_between_images_and_labels(tmp_path, cache):
    src = tmp_path / "fake"
    make_fake_dataset(src)
    write_gz(src / IDX_FILE_NAMES[3], idx_labels(np.arange(3)))
    with pytest.raises(DatasetError, match="4 images .* but 3 labels"):
        load_fashion_mnist(src)


def test_label_out_of_range(tmp_path, cache):
    src = tmp_path / "fake"
    make_fake_dataset(src)
    write_gz(src / IDX_FILE_NAMES[1], idx_labels(np.array([0, 1, 2, 3, 4, 12])))
    with pytest.raises(DatasetError, match="label 12 out of range"):
        load_fashion_mnist(src)


def test_errors_are_value_errors():
    assert issubclass(DatasetError, ValueError)


def test_parse_idx_round_trip():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_images(images), "mem"), images)
    np.testing.assert_array_equal(parse_idx(idx_labels(np.arange(7)), "mem"), np.arange(7))


def test_read_idx_uncompressed(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(idx_labels(np.arange(4)))
    np.testing.assert_array_equal(read_idx(path), np.arange(4))


# --------------------------------------------------------------------------------
# Fashion-MNIST and dispatch


def test_fashion_layout_from_a_folder(tmp_path, cache):
    src = tmp_path / "fashion"
    assert not fashion_mnist_available(src)
    arrays = make_fake_dataset(src, n_train=7, n_test=5)
    assert fashion_mnist_available(src)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(src)
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(fashion_mnist_available(), reason="Fashion-MNIST is installed here")
def test_fashion_not_installed_message(cache):
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        load_dataset("fashion_mnist")


@pytest.mark.skipif(not fashion_mnist_available(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(cache):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10


def test_load_dataset_mnist(mnist, cache):
    (x_train, y_train), _ = load_dataset(" MNIST ")
    np.testing.assert_array_equal(y_train, mnist[0][1])
    assert x_train.shape == mnist[0][0].shape


@pytest.mark.parametrize("name", ["cifar10", "", "mnist2"])
def test_load_dataset_unknown_name(name):
    with pytest.raises(DatasetError, match=r"unknown dataset .*'mnist', 'fashion_mnist'"):
        load_dataset(name)


# --------------------------------------------------------------------------------
# resources.resource_dir


def test_resource_dir_is_the_checkout():
    assert resources.resource_dir() == Path(resources.__file__).resolve().parent.parent / "resources"
    assert resources.preset_dir() == resources.resource_dir() / "presets"


def test_resource_dir_falls_back_to_sys_prefix(tmp_path, monkeypatch):
    installed = tmp_path / "prefix" / "share" / "visualcnn" / "resources"
    (installed / "presets").mkdir(parents=True)
    # A stray "resources" folder of another package beside ours must not be taken for ours.
    (tmp_path / "site" / "resources").mkdir(parents=True)
    monkeypatch.setattr(resources, "__file__", str(tmp_path / "site" / "visualcnn" / "resources.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert resources.resource_dir() == installed


def test_resource_dir_missing_names_both_places(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "__file__", str(tmp_path / "site" / "visualcnn" / "resources.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    with pytest.raises(FileNotFoundError) as info:
        resources.resource_dir()
    message = str(info.value)
    assert str(tmp_path / "site" / "resources") in message
    assert str(tmp_path / "prefix" / "share" / "visualcnn" / "resources") in message


# --------------------------------------------------------------------------------
# A cache that unzips cleanly but holds the wrong data, and a damaged bundled copy


def _rewrite_cache(path: Path, change, keep_digest: bool = True) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    if not keep_digest:
        arrays.pop("sha256", None)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_a_structurally_valid_but_wrong_mnist_cache_is_not_used(cache):
    expected = load_mnist()
    (path,) = cache_files(cache)
    blob = path.read_bytes()

    def shuffle_labels(arrays):
        arrays["y_train"] = np.roll(arrays["y_train"], 1)  # valid labels, wrong ones

    _rewrite_cache(path, shuffle_labels)  # even with the stored digests left as they were
    (x_train, y_train), _ = load_mnist()
    np.testing.assert_array_equal(y_train, expected[0][1])
    assert path.read_bytes() == blob  # rebuilt from the bundled files


def test_a_cache_whose_digests_were_rewritten_is_still_checked_against_mnist(cache):
    expected = load_mnist()
    (path,) = cache_files(cache)

    def forge(arrays):
        arrays["x_test"] = np.zeros_like(arrays["x_test"])
        arrays["sha256"] = np.array([datasets.idx_sha256(arrays[k]) for k in ("x_train", "y_train", "x_test",
                                                                                "y_test")])

    _rewrite_cache(path, forge)
    _, (x_test, _) = load_mnist()
    np.testing.assert_array_equal(x_test, expected[1][0])


def test_a_cache_without_digests_is_rebuilt_for_any_data_set(tmp_path, cache):
    src = tmp_path / "fake"
    arrays = make_fake_dataset(src)
    load_fashion_mnist(src)
    (path,) = cache_files(cache)

    def swap(arrays_in_cache):
        arrays_in_cache["x_train"] = 255 - arrays_in_cache["x_train"]

    _rewrite_cache(path, swap, keep_digest=False)
    (x_train, _), _ = load_fashion_mnist(src)
    np.testing.assert_array_equal(x_train, arrays[0])


def test_idx_sha256_matches_the_published_checksums(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert datasets.idx_sha256(y_test) == MNIST_SHA256["t10k-labels-idx1-ubyte"]
    assert datasets.idx_sha256(x_train) == MNIST_SHA256["train-images-idx3-ubyte"]


@pytest.mark.parametrize("damage", ["checksum", "missing", "garbage"])
def test_a_damaged_bundled_mnist_is_one_clear_error(tmp_path, cache, monkeypatch, damage):
    bundled = copy_mnist(tmp_path / "resources" / "mnist")
    target = bundled / IDX_FILE_NAMES[1]
    if damage == "checksum":
        y = read_idx(target)
        y[5] = (y[5] + 1) % 10
        write_gz(target, idx_labels(y))
    elif damage == "missing":
        target.unlink()
    else:
        target.write_bytes(b"\x1f\x8b" + b"\x00" * 50)
    monkeypatch.setattr(datasets, "mnist_dir", lambda: bundled)
    with pytest.raises(DatasetError) as info:
        load_mnist()
    message = str(info.value)
    assert message.startswith("the bundled MNIST is damaged or incomplete")
    assert IDX_FILE_NAMES[1] in message and "reinstall" in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_a_damaged_folder_given_by_path_says_what_to_do(tmp_path, cache):
    src = copy_mnist(tmp_path / "mine")
    (src / IDX_FILE_NAMES[0]).unlink()
    with pytest.raises(DatasetError, match=r"missing file; put the four original MNIST \.gz files in"):
        load_mnist(src)
