"""Tests of the AER-DAT2.0 reader, frame integration and the CIFAR10-DVS pipeline."""

import logging
import math
import os
import struct
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from keras_dta.data import aedat
from keras_dta.data import cifar10_dvs

SIZE = 128


# ---------------------------------------------------------------------------
# An independent encoder: raw sensor fields -> AER-DAT2.0 bytes, one struct
# per event (deliberately not the library's vectorised encoder).
# ---------------------------------------------------------------------------


def encode_raw(events, header=(b"#!AER-DAT2.0", b"# This is a raw AE data file")):
    """`events`: iterable of (t, x_raw, y_raw, p_raw) -> file bytes."""
    out = b"".join(line + b"\r\n" for line in header)
    for t, x, y, p in events:
        out += struct.pack(">II", (y << 8) | (x << 1) | p, t)
    return out


def random_raw_events(rng, n):
    return [
        (int(i * 10), int(x), int(y), int(p))
        for i, (x, y, p) in enumerate(
            zip(rng.integers(0, SIZE, n), rng.integers(0, SIZE, n), rng.integers(0, 2, n))
        )
    ]


def reference_frames(raw_events, T):
    """Loop reference: convention x'=127-y, y'=127-x, p'=1-p; split by number."""
    n = len(raw_events)
    d = n // T
    frames = np.zeros((T, SIZE, SIZE, 2), np.float32)
    for k, (_, x, y, p) in enumerate(raw_events):
        j = min(k // d, T - 1)
        frames[j, 127 - x, 127 - y, 1 - p] += 1  # row = y' = 127 - x
    return frames


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# ---------------------------------------------------------------------------
# Reader and integrator
# ---------------------------------------------------------------------------


def test_decode_applies_axis_and_polarity_convention(tmp_path):
    raw = [(7, 3, 5, 1), (9, 0, 127, 0), (11, 127, 0, 1)]
    events = aedat.read_aedat(write(tmp_path / "a.aedat", encode_raw(raw)))
    np.testing.assert_array_equal(events.t, [7, 9, 11])
    np.testing.assert_array_equal(events.x, [127 - 5, 0, 127])  # x' = 127 - y
    np.testing.assert_array_equal(events.y, [127 - 3, 127, 0])  # y' = 127 - x
    np.testing.assert_array_equal(events.p, [0, 1, 0])  # p' = 1 - p


def test_integrate_exact_frames_with_remainder_in_last_frame():
    # 7 events, T = 3: d = 2, frames take events [0, 2), [2, 4), [4, 7).
    raw = [
        (0, 10, 20, 0),
        (1, 10, 20, 0),  # same pixel twice: count 2
        (2, 0, 0, 1),
        (3, 127, 127, 0),
        (4, 5, 6, 1),
        (5, 5, 6, 1),
        (6, 5, 6, 0),
    ]
    frames = aedat.integrate_frames(aedat.decode_aedat(encode_raw(raw)), 3)
    assert frames.shape == (3, 128, 128, 2) and frames.dtype == np.float32
    expected = np.zeros_like(frames)
    expected[0, 127 - 10, 127 - 20, 1] = 2
    expected[1, 127, 127, 0] = 1
    expected[1, 0, 0, 1] = 1
    expected[2, 127 - 5, 127 - 6, 0] = 2
    expected[2, 127 - 5, 127 - 6, 1] = 1
    np.testing.assert_array_equal(frames, expected)


@pytest.mark.parametrize("T,n", [(1, 50), (2, 101), (3, 300), (4, 403)])
def test_integrate_matches_loop_reference(T, n):
    raw = random_raw_events(np.random.default_rng(T), n)
    frames = aedat.integrate_frames(aedat.decode_aedat(encode_raw(raw)), T)
    np.testing.assert_array_equal(frames, reference_frames(raw, T))
    assert frames.sum() == n


def test_encode_aedat_round_trips():
    rng = np.random.default_rng(0)
    events = aedat.Events(
        t=np.arange(20), x=rng.integers(0, 128, 20), y=rng.integers(0, 128, 20),
        p=rng.integers(0, 2, 20),
    )
    decoded = aedat.decode_aedat(aedat.encode_aedat(events, header_lines=["hi"]))
    for a, b in zip(decoded, events):
        np.testing.assert_array_equal(a, b)


BAD_FILES = {
    "not_aedat": (b"#!AER-DAT3.1\r\n" + b"\0" * 16, "not an AER-DAT2.0 file"),
    "no_header": (b"\0" * 16, "not an AER-DAT2.0 file"),
    "truncated": (encode_raw([(0, 1, 1, 0)] * 20) + b"\0\0\0", "truncated"),
    "header_cut": (b"#!AER-DAT2.0\r\n# unterminated", "truncated"),
    "empty": (encode_raw([]), "empty or too short"),
    "too_short": (encode_raw([(0, 1, 1, 0)] * 2), "empty or too short"),
    "outside": (
        encode_raw([(0, 1, 1, 0)] * 10)[:-8] + struct.pack(">II", 1 << 20, 5),
        "outside the 128x128",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_naming_the_file(tmp_path, case):
    data, message = BAD_FILES[case]
    path = write(tmp_path / f"cifar10_cat_{case}.aedat", data)
    with pytest.raises(ValueError, match=message) as info:
        cifar10_dvs.recording_to_frames(open(path, "rb").read(), 4, 16, name=path)
    assert path in str(info.value)


def test_resize_matches_tf_bilinear():
    frames = np.random.default_rng(0).poisson(0.3, (2, 128, 128, 2)).astype(np.float32)
    for size in (48, 16, 128, 160):
        ours = cifar10_dvs.resize_frames(frames, size)
        theirs = tf.image.resize(frames, (size, size), method="bilinear").numpy()
        assert ours.shape == (2, size, size, 2)
        # TF interpolates in float32 with a little rounding; ours uses exact weights.
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# Miniature dataset
# ---------------------------------------------------------------------------

FILES_PER_CLASS = 12  # indices 0..11: numeric order differs from lexicographic
T, IMAGE = 3, 16


def recording_bytes(label, index):
    rng = np.random.default_rng(1000 * label + index)
    return encode_raw(random_raw_events(rng, 60 + 7 * index))


def make_dataset(root, layout, bad=None):
    """10 classes x 12 recordings as class folders or class zips.

    `bad`: optional (class, index, bytes) replacing one recording.
    """
    root.mkdir(exist_ok=True)
    for label, cls in enumerate(cifar10_dvs.CLASSES):
        files = {}
        for i in range(FILES_PER_CLASS):
            files[f"cifar10_{cls}_{i}.aedat"] = recording_bytes(label, i)
        if bad is not None and bad[0] == cls:
            files[f"cifar10_{cls}_{bad[1]}.aedat"] = bad[2]
        if layout == "folder":
            (root / cls).mkdir()
            for name, data in files.items():
                write(root / cls / name, data)
        else:
            with zipfile.ZipFile(root / f"{cls}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    zf.writestr(f"{cls}/{name}", data)
    return str(root)


@pytest.fixture(scope="module", params=["folder", "zip"])
def mini(request, tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp(request.param), request.param)


# Recording 9 is the test one of 0..11 in name order (0, 1, 10, 11, 2, ..., 9), 11 in numeric.
TEST_INDEX = {"name": 9, "numeric": 11}


@pytest.mark.parametrize("order", ["name", "numeric"])
def test_split_is_9_to_1_in_the_chosen_file_order(mini, order):
    splits = cifar10_dvs.split_recordings(cifar10_dvs.list_recordings(mini, order))
    n_train = math.ceil(0.9 * FILES_PER_CLASS)
    assert len(splits["train"]) == 10 * n_train
    assert len(splits["test"]) == 10 * (FILES_PER_CLASS - n_train)
    assert [r.index for r in splits["test"]] == [TEST_INDEX[order]] * 10
    assert [r.label for r in splits["test"]] == list(range(10))
    assert sorted({r.index for r in splits["train"]}) == sorted(set(range(12)) - {TEST_INDEX[order]})
    kwargs = dict(T=T, image_size=IMAGE, order=order)
    assert cifar10_dvs.num_examples(mini, "train", **kwargs) == 110
    assert cifar10_dvs.num_examples(mini, "test", **kwargs) == 10


def test_name_order_is_spikingjelly_s_on_23_recordings_per_class(tmp_path):
    # SpikingJelly lists files sorted by name as strings; the first ceil(0.9 n) of each
    # class train. Listing reads no file, so empty ones will do.
    for cls in cifar10_dvs.CLASSES:
        (tmp_path / cls).mkdir()
        for i in range(23):
            (tmp_path / cls / f"cifar10_{cls}_{i}.aedat").write_bytes(b"")
    names = sorted(f"cifar10_airplane_{i}.aedat" for i in range(23))  # string order
    expected_test = [int(n.split("_")[-1].split(".")[0]) for n in names[21:]]
    assert expected_test == [8, 9]
    by_name = cifar10_dvs.split_recordings(cifar10_dvs.list_recordings(str(tmp_path)))
    assert [r.index for r in by_name["test"][:2]] == [8, 9]
    assert [r.index for r in by_name["train"][:4]] == [0, 1, 10, 11]
    numeric = cifar10_dvs.split_recordings(cifar10_dvs.list_recordings(str(tmp_path), "numeric"))
    assert [r.index for r in numeric["test"][:2]] == [21, 22]
    with pytest.raises(ValueError, match="order='random'"):
        cifar10_dvs.list_recordings(str(tmp_path), "random")


def test_an_empty_split_is_refused_naming_it(tmp_path):
    root = tmp_path / "five"
    root.mkdir()
    for label, cls in enumerate(cifar10_dvs.CLASSES):
        (root / cls).mkdir()
        for i in range(5):  # ceil(0.9 * 5) = 5: every recording trains
            write(root / cls / f"cifar10_{cls}_{i}.aedat", recording_bytes(label, i))
    with pytest.raises(ValueError, match="test split is empty"):
        cifar10_dvs.load(str(root), "test", T=T, image_size=IMAGE)


def test_test_split_frames_and_labels_are_exact(mini):
    ds = cifar10_dvs.load(mini, "test", T=T, image_size=IMAGE, batch_size=4)
    frames, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    frames, labels = np.concatenate(frames), np.concatenate(labels)
    assert frames.shape == (10, T, IMAGE, IMAGE, 2)
    np.testing.assert_array_equal(labels, np.eye(10, dtype=np.float32))
    for label in range(10):
        raw = recording_bytes(label, TEST_INDEX["name"])
        expected = cifar10_dvs.resize_frames(
            reference_frames(_raw_events(raw), T), IMAGE
        )
        np.testing.assert_allclose(frames[label], expected, rtol=1e-6, atol=1e-6)


def _raw_events(data):
    # The two header lines of `encode_raw`; the records may hold b"\r\n" themselves.
    header = len(encode_raw([]))
    body = data[header:]
    out = []
    for k in range(0, len(body), 8):
        a, t = struct.unpack(">II", body[k : k + 8])
        out.append((t, (a >> 1) & 0x7F, (a >> 8) & 0x7F, a & 1))
    return out


def test_training_pipeline_shapes_soft_labels_and_reproducibility(mini):
    def first_epoch(seed):
        ds = cifar10_dvs.load(
            mini, "train", T=T, image_size=IMAGE, batch_size=8, seed=seed, shuffle_buffer=64
        )
        return [(x.numpy(), y.numpy()) for x, y in ds]

    epoch = first_epoch(1)
    # Full batches only: 13 of 8 from 110 examples (the partial one is dropped).
    assert [len(y) for _, y in epoch] == [8] * 13
    for x, y in epoch:
        assert x.shape[1:] == (T, IMAGE, IMAGE, 2) and x.dtype == np.float32
        assert y.shape[1:] == (10,) and y.dtype == np.float32
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        assert (x >= 0).all()
    labels = np.concatenate([y for _, y in epoch])
    # Smoothing keeps labels soft (never a hard 1; off value 0.1 / 10) and
    # MixUp/CutMix put weight on two classes in some rows: not argmax'ed away.
    assert labels.max() < 1.0 and labels.min() > 0.0
    np.testing.assert_allclose(np.sort(labels, axis=1)[:, :-2], 0.01, rtol=1e-4)
    assert ((labels > 0.0101).sum(axis=1) == 2).any()
    again = first_epoch(1)
    for (x1, y1), (x2, y2) in zip(epoch, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = first_epoch(2)
    assert not np.array_equal(epoch[0][0], other[0][0])


def test_training_epochs_are_augmented_afresh(mini):
    # shuffle_buffer=1: no shuffling, so only new augmentation draws can
    # make the two epochs of `.repeat()` differ.
    ds = cifar10_dvs.load(
        mini, "train", T=T, image_size=IMAGE, batch_size=110, seed=3, shuffle_buffer=1
    )
    batches = iter(ds.repeat())
    first, second = next(batches)[0].numpy(), next(batches)[0].numpy()
    assert first.shape == second.shape == (110, T, IMAGE, IMAGE, 2)
    assert not np.array_equal(first, second)


def test_cache_is_reused(mini, monkeypatch):
    cifar10_dvs.num_examples(mini, "train", T=T, image_size=IMAGE)
    path = cifar10_dvs.cache_dir(mini, T, IMAGE)
    assert path == os.path.join(mini, "keras_dta_cache", f"T{T}_{IMAGE}_name")
    assert cifar10_dvs.cache_dir(mini, T, IMAGE, "numeric").endswith(f"T{T}_{IMAGE}_numeric")
    stamp = os.stat(os.path.join(path, "train.tfrecord")).st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cifar10_dvs.cache, "recording_to_frames", no_rebuild)
    ds = cifar10_dvs.load(mini, "train", T=T, image_size=IMAGE, batch_size=16, seed=0)
    assert next(iter(ds))[0].shape == (16, T, IMAGE, IMAGE, 2)
    assert os.stat(os.path.join(path, "train.tfrecord")).st_mtime_ns == stamp
    assert not [f for f in os.listdir(path) if ".tmp" in f]


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_skip_bad(tmp_path, caplog, layout):
    bad = encode_raw([(0, 1, 1, 0)] * 30) + b"\0\0\0\0\0"
    root = make_dataset(tmp_path / "d", layout, bad=("dog", 4, bad))
    with pytest.raises(ValueError, match=r"cifar10_dog_4\.aedat.*truncated"):
        cifar10_dvs.num_examples(root, "train", T=T, image_size=IMAGE)
    assert not os.path.exists(
        os.path.join(cifar10_dvs.cache_dir(root, T, IMAGE), "meta.json")
    )
    with caplog.at_level(logging.WARNING, logger="keras_dta.data.cifar10_dvs"):
        n = cifar10_dvs.num_examples(root, "train", T=T, image_size=IMAGE, skip_bad=True)
    assert n == 109
    assert "Skipped 1 bad" in caplog.text and "cifar10_dog_4.aedat" in caplog.text
    assert cifar10_dvs.num_examples(root, "test", T=T, image_size=IMAGE, skip_bad=True) == 10
    # A cache that left files out is refused when skip_bad=False.
    with pytest.raises(ValueError, match=r"skip_bad=True.*cifar10_dog_4\.aedat"):
        cifar10_dvs.load(root, "train", T=T, image_size=IMAGE)


def test_missing_class_raises(tmp_path):
    root = make_dataset(tmp_path / "d", "folder")
    os.rename(os.path.join(root, "frog"), os.path.join(root, "frogs"))
    with pytest.raises(ValueError, match=r"Missing class 'frog'.*frog\.zip"):
        cifar10_dvs.list_recordings(root)


def test_corrupt_zip_and_empty_class_raise(tmp_path):
    root = make_dataset(tmp_path / "d", "zip")
    write(os.path.join(root, "ship.zip"), b"not a zip")
    with pytest.raises(ValueError, match=r"ship\.zip: cannot read the zip"):
        cifar10_dvs.list_recordings(root)
    with zipfile.ZipFile(os.path.join(root, "ship.zip"), "w") as zf:
        zf.writestr("ship/readme.txt", "x")
    with pytest.raises(ValueError, match=r"ship\.zip: no recordings"):
        cifar10_dvs.list_recordings(root)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="Received: split='val'"):
        cifar10_dvs.load(str(tmp_path), "val")
    with pytest.raises(ValueError, match="Received: T=0"):
        cifar10_dvs.load(str(tmp_path), "train", T=0)
    with pytest.raises(ValueError, match="Received: data_dir="):
        cifar10_dvs.load(str(tmp_path / "nope"), "train")
    with pytest.raises(ValueError, match="Received: label_smoothing=1.0"):
        cifar10_dvs.load(str(tmp_path), "train", label_smoothing=1.0)
    assert cifar10_dvs.input_shape(4, 32) == (4, 32, 32, 2)
    assert cifar10_dvs.NUM_CLASSES == len(cifar10_dvs.CLASSES) == 10


# ---------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------

OP = {name: i for i, name in enumerate(cifar10_dvs.AUGMENT_OPS)}


def _apply(frames, op, magnitudes=(0.0, 0.0, 0.0, 0.0), seed=(1, 2)):
    return cifar10_dvs.apply_op(
        tf.constant(frames), tf.constant(OP[op]), tf.constant(magnitudes, tf.float32),
        tf.constant(seed, tf.int64),
    ).numpy()


def _frames(T=2, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 3, (T, size, size, 2)).astype(np.float32)


@pytest.mark.parametrize("op", ["identity", "shear_x", "translate_x", "rotate"])
def test_zero_magnitude_is_identity(op):
    frames = _frames()
    np.testing.assert_array_equal(_apply(frames, op), frames)


def test_translate_moves_by_five_pixels():
    frames = _frames()
    right = _apply(frames, "translate_x", (0.0, 1.0, 0.0, 0.0))
    np.testing.assert_array_equal(right[:, :, 5:], frames[:, :, :-5])
    assert (right[:, :, :5] == 0).all()
    up = _apply(frames, "translate_y", (0.0, 0.0, -1.0, 0.0))
    np.testing.assert_array_equal(up[:, :-5], frames[:, 5:])
    assert (up[:, -5:] == 0).all()


def test_shear_and_rotate_move_pixels_as_specified():
    frames = np.zeros((2, 17, 17, 2), np.float32)
    frames[:, 2, 8, 0] = 1.0  # row 2, column 8 (centre column), 6 rows above centre
    sheared = _apply(frames, "shear_x", (1.0, 0.0, 0.0, 0.0))
    # x_in = x + 0.3 (y - 8): the pixel lands at x = 8 + 0.3 * 6 = 9.8 -> 10.
    assert sheared[0, 2, 10, 0] == 1.0 and sheared.sum() == 2.0
    rotated = _apply(frames, "rotate", (0.0, 0.0, 0.0, 1.0))
    assert rotated.sum() >= 2.0 and rotated[0, 2, 8, 0] == 0.0
    np.testing.assert_array_equal(rotated[0], rotated[1])
    ys, xs = np.nonzero(rotated[0, :, :, 0])
    radius = np.hypot(ys - 8, xs - 8)
    angle = np.degrees(np.arctan2(xs - 8, 8 - ys))
    assert np.all(np.abs(radius - 6) < 1) and np.all(np.abs(np.abs(angle) - 30) < 8)


@pytest.mark.parametrize("seed", [(0, 1), (5, 9), (123, 4)])
def test_cutout_erases_one_square_on_all_frames(seed):
    size = 48
    out = _apply(np.ones((3, size, size, 2), np.float32), "cutout", seed=seed)
    zeros = out == 0
    assert (zeros == zeros[:1, :, :, :1]).all()  # same square on all T and channels
    rows, cols = np.nonzero(zeros[0, :, :, 0])
    side = int(round(math.sqrt(len(rows))))
    assert side * side == len(rows)
    assert rows.max() - rows.min() + 1 == side == cols.max() - cols.min() + 1
    assert 0.001 * size * size - side <= len(rows) <= 0.11 * size * size + side


def test_augment_is_seeded_and_same_for_all_frames():
    one = _frames(T=1, size=24)[0]
    frames = np.stack([one] * 3)  # identical frames stay identical
    outs = []
    for k in range(12):
        out = cifar10_dvs.augment(tf.constant(frames), tf.constant([k, 0], tf.int64)).numpy()
        again = cifar10_dvs.augment(tf.constant(frames), tf.constant([k, 0], tf.int64)).numpy()
        np.testing.assert_array_equal(out, again)
        np.testing.assert_array_equal(out[0], out[1])
        np.testing.assert_array_equal(out[0], out[2])
        assert out.shape == frames.shape
        outs.append(out)
    assert len({o.tobytes() for o in outs}) > 6
    assert any(np.array_equal(o[0], one[:, ::-1]) for o in outs)  # a plain flip shows up


def test_trainer_runs_on_a_miniature_recording_set(tmp_path):
    import keras

    from keras_dta import training

    data_dir = make_dataset(tmp_path / "dvs", "folder")
    config = training.make_config(
        "cifar10_dvs", data_dir=data_dir, model_dir=str(tmp_path / "run"), T=2, epochs=1,
        batch_size=4, steps_per_epoch=2, eval_steps=1, jit_compile=False, distribute="none",
        export=False,
        # 8 channels into the strided shortcut at 48x48: a 1x1 stride-2 conv there crashed
        # TensorFlow 2.21's oneDNN kernel (SIGSEGV) until the shortcut subsampled first.
        model_kwargs=dict(stem_filters=8, stage_filters=(8, 16), stage_blocks=(1, 1), stage_strides=(1, 2)),
    )
    results = training.train(config, verbose=0)
    assert results["optimizer_iterations"] == 2
    assert 0.0 <= results["test_accuracy"] <= 1.0
    model = keras.saving.load_model(results["paths"]["best_model"])
    assert model.input_shape == (None, 2, 48, 48, 2)
    assert os.path.isdir(os.path.join(data_dir, "keras_dta_cache", "T2_48_name"))
