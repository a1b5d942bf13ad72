import os

import pytest

from keras_dta import files


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    files.write_json(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("partial")
            raise RuntimeError("killed mid-write")
    assert path.read_text().strip() == '{\n  "v": 1\n}'
    assert os.listdir(tmp_path) == ["a.json"]


def test_write_bytes_rejects_text(tmp_path):
    with pytest.raises(TypeError, match="type\\(data\\)=str"):
        files.write_bytes(tmp_path / "b", "text")
    assert not (tmp_path / "b").exists()


def test_replace_dir(tmp_path):
    out = tmp_path / "out"

    def build(content):
        def _build(path):
            os.makedirs(path)
            (open(os.path.join(path, "f"), "w")).write(content)
        return _build

    files.replace_dir(build("one"), out)
    files.replace_dir(build("two"), out)
    assert (out / "f").read_text() == "two"

    def failing(path):
        os.makedirs(path)
        raise OSError("disk full")

    with pytest.raises(OSError):
        files.replace_dir(failing, out)
    assert (out / "f").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        files.write_text(tmp_path / "c.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "c.txt").stat().st_mode & 0o777 == 0o644


def test_write_bytes_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "model.tflite"
    files.write_bytes(str(path), b"old")
    with pytest.raises(TypeError):
        files.write_bytes(str(path), "not bytes")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.tflite"]
    files.write_bytes(str(path), b"new")
    assert path.read_bytes() == b"new"
