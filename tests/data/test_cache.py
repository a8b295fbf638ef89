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


def test_atomic_write_keeps_the_old_file_on_error_and_leaves_no_temporary(tmp_path):
    import os
    import stat

    import pytest
    from rl_i2it.data.cache import atomic_write, copy_checked, sha256
    from rl_i2it.errors import UserError
    out = tmp_path / "w.bin"
    with atomic_write(out) as f:
        f.write(b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert out.read_bytes() == b"new" and stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask   # not 0600
    with pytest.raises(ValueError):
        with atomic_write(out) as f:
            f.write(b"half")
            raise ValueError("a full disk, say")
    assert out.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    with pytest.raises(UserError, match="sha256"):                       # a wrong copy: nothing written
        copy_checked(src, tmp_path / "copy.bin", "0" * 64)
    assert not (tmp_path / "copy.bin").exists() and len(list(tmp_path.iterdir())) == 2
    copy_checked(src, tmp_path / "copy.bin", sha256(src))
    assert (tmp_path / "copy.bin").read_bytes() == b"payload"


def test_a_second_fetch_waits_for_the_first_and_stale_leftovers_go(tmp_path, capsys):
    """Two processes fetching into one folder (a seed sweep on a fresh cache): the second waits for
    the first, where it used to replace files the first was reading; a killed fetch's leftovers go."""
    import os
    import threading
    import time
    from rl_i2it.data.cache import STALE_SECONDS, fetch_lock
    (tmp_path / ".fetch-k1ll3d").mkdir()                    # a killed fetch's temporary folder
    (tmp_path / ".fetch-k1ll3d" / "x.whl").write_bytes(b"x")
    (tmp_path / "tmp_holiday").mkdir()                      # a user's (photos/ is read recursively): kept
    old, fresh = tmp_path / "mnist.npz.abc.tmp", tmp_path / "celeba_64.npz.def.tmp"   # a writer's, now
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    then = time.time() - 2 * STALE_SECONDS
    os.utime(old, (then, then))
    entered = threading.Event()

    def second():
        with fetch_lock(tmp_path):
            entered.set()
    with fetch_lock(tmp_path):
        assert sorted(p.name for p in tmp_path.iterdir()) == [".fetch.lock", fresh.name, "tmp_holiday"]
        t = threading.Thread(target=second)
        t.start()
        assert not entered.wait(0.5)                         # held: the second waits
    t.join(5)
    assert entered.is_set()
    assert "waiting for another process fetching into" in capsys.readouterr().err


def test_without_a_lock_nothing_is_removed(tmp_path, monkeypatch):
    """No fcntl (Windows) or no locks on the file system: another fetch may be downloading into
    its temporary folder, so none is cleared."""
    import sys
    from rl_i2it.data.cache import FETCH_TEMP, fetch_lock
    (tmp_path / f"{FETCH_TEMP}running").mkdir()
    monkeypatch.setitem(sys.modules, "fcntl", None)
    with fetch_lock(tmp_path):
        assert (tmp_path / f"{FETCH_TEMP}running").is_dir()


def test_a_damaged_fetched_file_names_its_fix(tmp_path, monkeypatch):
    """A damaged file of the fetched data says how to fetch it again; a user's file does not."""
    import pytest
    from rl_i2it.data.cache import refetch_hint
    from rl_i2it.data.images import read_image
    from rl_i2it.errors import UserError
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path / "cache"))
    style = tmp_path / "cache" / "style" / "starry_night.jpg"
    style.parent.mkdir(parents=True)
    style.write_bytes(b"\xff\xd8 cut short")
    with pytest.raises(UserError, match=r"starry_night.jpg \(\w+\); run `rl-i2it data fetch style --force`"):
        read_image(style)
    assert refetch_hint(tmp_path / "cache" / "registration" / "itk" / "BrainT1Slice.png") == \
        "; run `rl-i2it data fetch itk --force`"
    assert refetch_hint(tmp_path / "cache" / "paired" / "user" / "x.npz") == ""      # rebuilt by the cache
    mine = tmp_path / "mine.jpg"
    mine.write_bytes(b"\xff\xd8 cut short")
    with pytest.raises(UserError) as err:
        read_image(mine)
    assert "data fetch" not in str(err.value)


def test_record_sums_keeps_the_sums_recorded_before(tmp_path, capsys):
    """files recorded one call at a time (mnist records each file as it is converted) must all
    stay recorded: else a later-damaged earlier file is 'unknown', re-recorded as it is, and used."""
    from rl_i2it.data.cache import intact, record_sums
    (tmp_path / "a.bin").write_bytes(b"a" * 100)
    (tmp_path / "b.bin").write_bytes(b"b" * 100)
    record_sums(tmp_path, ["a.bin"])
    record_sums(tmp_path, ["b.bin"])
    assert intact(tmp_path, ["a.bin", "b.bin"])
    (tmp_path / "a.bin").write_bytes(b"x" * 100)          # damaged after it was recorded
    assert not intact(tmp_path, ["a.bin", "b.bin"])
    assert "a.bin" in capsys.readouterr().err
