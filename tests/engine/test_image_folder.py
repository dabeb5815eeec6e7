"""Image folders (engine/image_folder.py): the layout, colour and resizing, and every kind of
hostile file skipped with its reason or refused with one line saying what to do."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualcnn.engine import image_folder
from visualcnn.engine.datasets import DatasetError
from visualcnn.engine.image_folder import (LoadCancelled, decode_image, load_image, memory_refusal, read_image_folder,
                                           scan_image_folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from make_shapes_dataset import CLASSES, make_shapes_dataset  # noqa: E402


def solid(path, colour, size=(6, 4), mode="RGB"):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return Path(path)


def two_classes(root, per_class=2):
    for name, colour in (("blue", (0, 0, 255)), ("red", (255, 0, 0))):
        for i in range(per_class):
            solid(root / name / f"{i}.png", colour)
    return root


def skipped_reasons(report):
    return {s.path: s.reason for s in report.skipped}


# --- layout -------------------------------------------------------------------------------


def test_sorted_folder_names_are_the_class_names_and_labels(tmp_path):
    for name in ("zebra", "apple", "mango"):
        solid(tmp_path / name / "a.png", (10, 20, 30))
    solid(tmp_path / "mango" / "deeper" / "b.jpg", (10, 20, 30))  # Keras reads below a class folder too
    images = read_image_folder(tmp_path, (4, 4, 3))
    assert images.class_names == ("apple", "mango", "zebra")
    assert images.y.tolist() == [0, 1, 1, 2] and images.report.counts == [1, 2, 1]
    assert images.x.shape == (4, 4, 4, 3) and images.x.dtype == np.uint8


def test_rgb_and_grayscale_follow_the_channels_and_resize_to_the_input(tmp_path):
    path = solid(tmp_path / "red.png", (255, 0, 0), size=(10, 7))
    rgb = decode_image(path, (3, 5, 3))
    assert rgb.shape == (3, 5, 3) and (rgb == [255, 0, 0]).all()
    grey = decode_image(path, (3, 5, 1))
    # Pillow's L = ITU-R 601-2 luma: 299/1000 of red
    assert grey.shape == (3, 5, 1) and (grey == 76).all()


def test_interpolation_named_is_the_one_used(tmp_path):
    row = np.array([[0, 0, 255, 255]], np.uint8).repeat(2, axis=0)
    Image.fromarray(row, "L").save(tmp_path / "edge.png")
    wide = {name: decode_image(tmp_path / "edge.png", (2, 8, 1), name)[0, :, 0].tolist()
            for name in ("nearest", "bilinear", "bicubic", "area")}
    assert wide["nearest"] == [0, 0, 0, 0, 255, 255, 255, 255]  # nearest invents no grey
    assert all(wide[name][0] == 0 and wide[name][-1] == 255 for name in wide)
    assert wide["area"] == wide["nearest"]  # enlarging, area repeats pixels (as TensorFlow's area does)
    assert len({tuple(wide[name]) for name in ("nearest", "bilinear", "bicubic")}) == 3
    assert 0 < wide["bilinear"][3] < 128 < wide["bilinear"][4] < 255  # the edge blended
    # shrinking: "area" averages the pixels each output pixel covers
    assert decode_image(tmp_path / "edge.png", (2, 2, 1), "area")[0, :, 0].tolist() == [0, 255]
    with pytest.raises(DatasetError, match="unknown interpolation 'lanczos'"):
        decode_image(tmp_path / "edge.png", (2, 2, 1), "lanczos")


def test_alpha_palette_and_16_bit_images_become_plain_pixels(tmp_path):
    Image.new("RGBA", (4, 4), (0, 200, 0, 0)).save(tmp_path / "alpha.png")
    assert (decode_image(tmp_path / "alpha.png", (4, 4, 3)) == [0, 200, 0]).all()  # alpha dropped, like Keras
    Image.new("RGB", (4, 4), (0, 0, 255)).convert("P").save(tmp_path / "palette.png")
    assert (decode_image(tmp_path / "palette.png", (4, 4, 3)) == [0, 0, 255]).all()
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(tmp_path / "deep.png")
    assert (decode_image(tmp_path / "deep.png", (4, 4, 1)) == 40000 >> 8).all()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "photo.jpg", quality=95)
    assert abs(int(decode_image(tmp_path / "photo.jpg", (4, 4, 1)).mean()) - 9) <= 2
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "old.bmp")
    assert (decode_image(tmp_path / "old.bmp", (4, 4, 3)) == 9).all()


# --- hostile files: skipped, each with its reason ------------------------------------------


def test_every_hostile_file_is_skipped_with_its_reason(tmp_path):
    root = two_classes(tmp_path / "data")
    good = root / "red" / "0.png"
    (root / "red" / "empty.png").write_bytes(b"")
    (root / "red" / "cut.png").write_bytes(good.read_bytes()[:40])  # inside the pixel data
    (root / "red" / "text.png").write_text("this is not a picture\n")
    (root / "red" / "notes.txt").write_text("labels: red\n")
    Image.new("1", (8000, 8000)).save(root / "red" / "bomb.png")  # 64 megapixels in a few KB
    Image.new("RGB", (4, 4)).save(root / "red" / "anim.png", format="GIF")  # a GIF named .png
    os.symlink("loop.png", root / "red" / "loop.png")  # a link to itself
    os.symlink("missing.png", root / "red" / "broken.png")
    os.symlink("..", root / "red" / "up")  # a folder loop: red/up -> the data folder
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "red" / "pipe.png")  # would block a plain open() forever
    images = read_image_folder(root, (4, 4, 3))
    reasons = skipped_reasons(images.report)
    assert reasons["red/empty.png"] == "empty file (0 bytes)"
    assert reasons["red/cut.png"] == "truncated or damaged image data"
    assert reasons["red/text.png"] == "not a readable image (the content is not PNG, JPEG or BMP)"
    assert reasons["red/notes.txt"].startswith("not an image file (.txt")
    assert "8000x8000 pixels, more than the 40 megapixel limit" in reasons["red/bomb.png"]
    assert reasons["red/anim.png"] == "a GIF image; PNG, JPEG and BMP are read"
    assert reasons["red/loop.png"] == "a symlink loop (the link points back to itself)"
    assert reasons["red/broken.png"] == "a broken link (its target does not exist)"
    assert "symlink loop" in reasons["red/up"]
    if hasattr(os, "mkfifo"):
        assert reasons["red/pipe.png"] == "not a regular file (a pipe, socket or device)"
    assert images.report.counts == [2, 2]  # the good images all read
    lines = images.report.lines()
    assert lines[0].endswith(f"4 images in 2 classes, read as 4x4 RGB (bilinear), {len(reasons)} file(s) skipped")
    assert "  skipped red/empty.png: empty file (0 bytes)" in lines


def test_a_truncated_image_is_skipped_not_padded(tmp_path):
    root = two_classes(tmp_path)
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(root / "blue" / "big.png")
    data = (root / "blue" / "big.png").read_bytes()
    (root / "blue" / "big.png").write_bytes(data[:len(data) // 2])
    images = read_image_folder(root, (8, 8, 3))
    assert skipped_reasons(images.report)["blue/big.png"] == "truncated or damaged image data"
    assert len(images.y) == 4


def test_a_class_whose_files_all_fail_is_left_out_and_the_labels_renumbered(tmp_path):
    root = two_classes(tmp_path)
    solid(root / "green" / "0.png", (0, 255, 0))
    (root / "broken").mkdir()
    (root / "broken" / "x.png").write_text("nope")
    (root / "empty").mkdir()
    scan = scan_image_folder(root)
    assert scan.class_names == ("blue", "broken", "green", "red") and scan.empty_classes == ("empty",)
    images = read_image_folder(scan, (2, 2, 3))
    assert images.class_names == ("blue", "green", "red") and sorted(set(images.y.tolist())) == [0, 1, 2]
    assert (images.x[images.y == 1] == [0, 255, 0]).all()  # green keeps its own pictures
    lines = images.report.lines()
    assert "  class folder 'broken' has no readable image: left out" in lines
    assert "  class folder 'empty' has no readable image: left out" in lines


# --- refused folders: one line saying what to do ----------------------------------------------


def test_folders_that_cannot_be_a_dataset_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="no such folder; choose a folder with one sub-folder of images per class"):
        scan_image_folder(tmp_path / "nothing")
    solid(tmp_path / "loose" / "a.png", (1, 2, 3))
    with pytest.raises(DatasetError, match=r"holds 1 images but no class sub-folders: put each class's images in "
                                           r"its own sub-folder"):
        scan_image_folder(tmp_path / "loose")
    solid(tmp_path / "one" / "cats" / "a.png", (1, 2, 3))
    (tmp_path / "one" / "dogs").mkdir()
    with pytest.raises(DatasetError, match=r"has only one class with images \('cats'\): a classifier needs at least "
                                           r"two; add a sub-folder"):
        scan_image_folder(tmp_path / "one")
    for i in range(1001):
        (tmp_path / "many" / f"c{i:04d}").mkdir(parents=True)
    with pytest.raises(DatasetError, match="has 1,001 class folders; VisualCNN handles at most 1,000 classes"):
        scan_image_folder(tmp_path / "many")
    (tmp_path / "nofiles" / "a").mkdir(parents=True)
    (tmp_path / "nofiles" / "b").mkdir()
    with pytest.raises(DatasetError, match="none of the 2 class folders holds a PNG, JPEG or BMP image"):
        scan_image_folder(tmp_path / "nofiles")


def test_a_folder_of_unreadable_files_says_so(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_text("text")
    with pytest.raises(DatasetError, match=r"no class has readable images, a classifier needs at least two classes; "
                                           r"2 file\(s\) were skipped \(first: skipped a/x.png: not a readable"):
        read_image_folder(tmp_path, (4, 4, 1))


def test_memory_is_estimated_from_the_file_count_before_decoding(tmp_path, monkeypatch):
    root = two_classes(tmp_path, per_class=3)
    monkeypatch.setattr(image_folder, "decode_image", lambda *a, **k: pytest.fail("decoded before the memory check"))
    with pytest.raises(DatasetError) as refused:
        read_image_folder(root, (224, 224, 3), available=8_000_000)  # 4 MB allowed, 752,640 bytes an image
    assert str(refused.value) == (f"{root}: 6 images at 224x224x3 need 4.3 MiB in memory, more than half of the "
                                  "7.6 MiB free; use a smaller input shape or a folder with at most 5 images")
    with pytest.raises(DatasetError, match="free; use a smaller input shape$"):
        read_image_folder(root, (224, 224, 3), available=1_000_000)
    assert memory_refusal(1000, (28, 28, 1), "x", available=10**9) is None


def test_progress_reports_and_can_cancel(tmp_path):
    root = two_classes(tmp_path)
    seen = []
    read_image_folder(root, (2, 2, 1), progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    with pytest.raises(LoadCancelled):
        read_image_folder(root, (2, 2, 1), progress=lambda done, total: False)


def test_load_image_names_the_file_and_the_problem(tmp_path):
    path = solid(tmp_path / "a.png", (0, 0, 0), size=(50, 40))
    assert load_image(path, (28, 28)).shape == (28, 28, 1)
    assert load_image(path, [32, 32, 3]).shape == (32, 32, 3)
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"z.png: empty file \(0 bytes\); choose a PNG, JPEG or BMP image"):
        load_image(tmp_path / "z.png", (28, 28, 1))
    with pytest.raises(DatasetError, match="the model needs an image input"):
        load_image(path, (784,))
    with pytest.raises(DatasetError, match="nope.png: a broken link"):
        load_image(tmp_path / "nope.png", (28, 28, 1))


def test_the_shapes_generator_is_deterministic_rgb_and_complete(tmp_path):
    first = make_shapes_dataset(tmp_path / "a", per_class=2, size=16)
    second = make_shapes_dataset(tmp_path / "b", per_class=2, size=16)
    images = read_image_folder(first, (16, 16, 3))
    assert images.class_names == tuple(sorted(CLASSES)) and len(CLASSES) == 10
    assert images.report.counts == [2] * 10 and not images.report.skipped
    assert np.array_equal(images.x, read_image_folder(second, (16, 16, 3)).x)
    spread = images.x.reshape(len(images.x), -1, 3).std(axis=1).mean(axis=1)
    assert (spread > 5).all()  # every image shows a shape on a background
    hues = images.x.reshape(-1, 3)
    assert np.abs(hues[:, 0].astype(int) - hues[:, 1]).mean() > 10  # colour, not grey


def test_image_dataset_from_directory_gives_keras_arrays_and_split(tmp_path, capsys):
    from visualcnn.engine.image_folder import image_dataset_from_directory

    root = make_shapes_dataset(tmp_path / "s", per_class=5, size=12, classes=("circle", "square"))
    (root / "square" / "bad.png").write_text("x")
    training, validation = image_dataset_from_directory(root, image_size=(8, 8), validation_split=0.2,
                                                        subset="both", seed=3)
    assert capsys.readouterr().out.splitlines() == ["Found 10 files belonging to 2 classes.",
                                                    "skipped square/bad.png: not a readable image (the content is "
                                                    "not PNG, JPEG or BMP)"]
    x, y = training
    assert x.shape == (8, 8, 8, 3) and x.dtype == np.float32 and x.max() > 1  # 0..255, like Keras
    assert y.dtype == np.int32 and validation.x.shape == (2, 8, 8, 3) and training.class_names == ["circle", "square"]
    again = image_dataset_from_directory(root, image_size=(8, 8), validation_split=0.2, subset="validation", seed=3,
                                         verbose=False)
    assert np.array_equal(again.x, validation.x)
    grey = image_dataset_from_directory(root, image_size=(8, 8), color_mode="grayscale", label_mode="categorical",
                                        shuffle=False, verbose=False)
    assert grey.x.shape == (10, 8, 8, 1) and grey.y.shape == (10, 2) and grey.y[:5, 0].tolist() == [1] * 5
    with pytest.raises(DatasetError, match="give a seed so training and validation do not overlap"):
        image_dataset_from_directory(root, validation_split=0.2, subset="training")


def test_a_whole_disk_chosen_by_mistake_is_refused_not_walked(tmp_path):
    root = two_classes(tmp_path / "home", per_class=3)
    for i in range(5):
        (root / "red" / f"n{i}.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"holds more than 8 files and folders: choose the folder of the data set "
                                           r"itself \(one sub-folder per class\), not a whole disk or home folder"):
        scan_image_folder(root, max_entries=8)
    assert len(scan_image_folder(root, max_entries=11).files) == 6


def test_a_folder_of_mostly_other_files_is_refused(tmp_path, monkeypatch):
    root = two_classes(tmp_path / "system", per_class=1)
    for i in range(12):
        (root / "blue" / f"lib{i}.so").write_text("x")
    monkeypatch.setattr(image_folder, "MAX_OTHER_FILES", 10)
    with pytest.raises(DatasetError, match=r"holds 12 files that are not images beside 2 images: it looks like a "
                                           r"system or home folder, not a data set"):
        scan_image_folder(root)
    for i in range(2, 4):  # one caption per image is a data set
        solid(root / "blue" / f"{i}.png", (0, 0, 255))
        solid(root / "red" / f"{i}.png", (255, 0, 0))
    assert len(scan_image_folder(root).files) == 6 and len(scan_image_folder(root).skipped) == 12


def test_names_that_are_not_utf8_can_still_be_printed(tmp_path):
    root = two_classes(tmp_path)
    latin = os.fsencode(root) + b"/caf\xe9"
    os.mkdir(latin)
    Image.new("RGB", (4, 4)).save(os.fsdecode(latin + b"/x.png"))
    open(latin + b"/r\xe9sum\xe9.doc", "wb").close()
    images = read_image_folder(root, (2, 2, 1))
    assert images.class_names == ("blue", "caf\ufffd", "red")
    "\n".join(images.report.lines()).encode("utf-8")  # no lone surrogates left to fail a print


def test_a_large_jpeg_decoded_at_reduced_scale_matches_the_full_decode(tmp_path):
    y, x = np.mgrid[0:768, 0:1024]
    photo = np.stack([np.sin(x / 90) * 120 + 128, np.cos(y / 60) * 120 + 128, (x + y) / 1800 * 255], -1)
    Image.fromarray(photo.astype(np.uint8)).save(tmp_path / "photo.jpg", quality=90)
    fast = decode_image(tmp_path / "photo.jpg", (48, 64, 3)).astype(int)
    with Image.open(tmp_path / "photo.jpg") as image:
        full = np.asarray(image.convert("RGB").resize((64, 48), Image.Resampling.BILINEAR)).astype(int)
    assert fast.shape == full.shape and np.abs(fast - full).max() <= 3
