import json

import numpy as np
import pytest

from fstmatch.utils import io


def test_atomic_path_leaves_old_content_on_failure(tmp_path):
    target = tmp_path / "a.json"
    io.atomic_write_json(target, {"x": 1})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_temp_name_is_hidden_and_keeps_suffix(tmp_path):
    tmp = io.temp_path_for(tmp_path / "000.mp4")
    assert tmp.name.startswith(".") and tmp.suffix == ".mp4"


def test_npz_and_jsonl(tmp_path):
    io.atomic_savez(tmp_path / "x.npz", a=np.arange(3))
    assert np.load(tmp_path / "x.npz")["a"].tolist() == [0, 1, 2]
    io.write_jsonl(tmp_path / "m.jsonl", [{"a": np.int64(1)}, {"b": [1.5]}])
    io.append_jsonl(tmp_path / "m.jsonl", {"c": 2})
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"torn": ')  # an interrupted append
    assert io.read_jsonl(tmp_path / "m.jsonl") == [{"a": 1}, {"b": [1.5]}, {"c": 2}]
