"""data/cache.py: what the commands write for users to read."""


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    """results.json: strict JSON (jq, JavaScript) with a class no pair fell in (NaN) as null;
    numpy and torch scalars as numbers."""
    import json
    import math

    import numpy as np
    import torch

    from rl_i2it.data.cache import write_json
    write_json(tmp_path / "r.json", {"a": [1.5, float("nan")], "b": {"c": float("inf"), "d": np.float32(2.5)},
                                     "e": torch.tensor(3.0), "f": "text", "g": (1, None)})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: math.nan)
    assert back == {"a": [1.5, None], "b": {"c": None, "d": 2.5}, "e": 3.0, "f": "text", "g": [1, None]}


def test_an_empty_data_variable_means_the_default_cache_not_the_working_folder(monkeypatch, tmp_path):
    from pathlib import Path
    from rl_i2it.data.cache import cache_dir
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in ("", "  "):
        monkeypatch.setenv("RL_I2IT_DATA", value)
        assert cache_dir() == tmp_path / ".cache" / "rl-i2it"
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path / "data"))
    assert cache_dir() == Path(tmp_path / "data")
