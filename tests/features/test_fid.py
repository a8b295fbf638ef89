import numpy as np
import pytest
import torch

from rl_i2it.features import feature_stats, fid, fid_from_features, frechet_distance, inception_features


def random_cov(d, seed, rank=None):
    a = np.random.default_rng(seed).normal(size=(d, rank or d))
    return a @ a.T / (rank or d)


def reference_fd(m1, s1, m2, s2):
    """The usual formula with tr((S1 S2)^1/2) from the eigenvalues of the (non-symmetric) product."""
    ev = np.linalg.eigvals(s1 @ s2).real.clip(0, None)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).sum())


def test_diagonal_closed_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)) == pytest.approx(4.0)


def test_identical_zero_and_mean_shift():
    s = random_cov(6, 1)
    mu = np.arange(6.0)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9
    for shift in (0.5, 1.0, 2.0):
        assert frechet_distance(mu, s, mu + shift, s) == pytest.approx(6 * shift ** 2, rel=1e-9)
    # rank-deficient covariances (fewer samples than dimensions, as FID on 100 images): still 0
    low = random_cov(64, 2, rank=10)
    assert abs(frechet_distance(np.zeros(64), low, np.zeros(64), low)) < 1e-9


def test_general_matches_reference_and_is_symmetric():
    m1, m2 = np.zeros(8), np.full(8, 0.3)
    s1, s2 = random_cov(8, 3), random_cov(8, 4)
    d = frechet_distance(m1, s1, m2, s2)
    assert d == pytest.approx(reference_fd(m1, s1, m2, s2), rel=1e-8)
    assert d == pytest.approx(frechet_distance(m2, s2, m1, s1), rel=1e-8)
    # torch inputs, any float dtype
    t = [torch.as_tensor(a, dtype=torch.float32) for a in (m1, s1, m2, s2)]
    assert frechet_distance(*t) == pytest.approx(d, rel=1e-5)


def test_feature_stats_matches_numpy():
    f = np.random.default_rng(5).normal(size=(20, 4))
    mu, cov = feature_stats(torch.as_tensor(f, dtype=torch.float64))
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False))


@pytest.mark.parametrize("n1,n2", [(5, 7), (30, 40)])       # fewer, then more samples than dimensions
def test_fid_from_features_matches_covariance_route(n1, n2):
    rng = np.random.default_rng(6)
    f1, f2 = rng.normal(size=(n1, 12)), rng.normal(0.3, 1.5, size=(n2, 12))
    expected = frechet_distance(*feature_stats(f1), *feature_stats(f2))
    assert fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(torch.as_tensor(f1), torch.as_tensor(f1)) == pytest.approx(0.0, abs=1e-10)


class FakeInception(torch.nn.Module):
    """A fixed random projection of 4x4-pooled pixels, recording what it was fed."""

    def __init__(self, dim=12):
        super().__init__()
        self.proj = torch.nn.Linear(48, dim)
        self.seen = []

    def forward(self, x):
        self.seen.append((tuple(x.shape), float(x.min()), float(x.max())))
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


def test_inception_features_preprocessing(smooth):
    model = FakeInception()
    x = smooth(5, 32)
    f = inception_features(x, batch=2, model=model)
    assert f.shape == (5, 12) and f.dtype == torch.float32
    assert [s[0] for s in model.seen] == [(2, 3, 299, 299), (2, 3, 299, 299), (1, 3, 299, 299)]
    model.seen.clear()
    inception_features(torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)]), model=model)
    assert model.seen[0][1:] == pytest.approx((-1.0, 127 / 128), abs=1e-5)    # (255 x - 128) / 128, up to the
    # resize's round-off (a one-thread interpolation reads 1 + 2e-6 for a constant 1)
    g = smooth(2, 32, c=1)
    torch.testing.assert_close(inception_features(g, model=model), inception_features(g.repeat(1, 3, 1, 1), model=model))


def test_fid_with_fake_network(smooth):
    model = FakeInception()
    real = smooth(24, 32, seed=0)
    assert abs(fid(real, real, model=model)) < 1e-4
    other = smooth(24, 32, seed=1)
    values = [fid(real, (other * (1 - a) + a).clamp(0, 1), model=model) for a in (0.0, 0.2, 0.5)]
    assert values[0] > 0 and values[0] < values[1] < values[2]


def test_exceptions():
    with pytest.raises(ValueError, match=r"\[D\]"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"\[N >= 2, D\]"):
        feature_stats(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        inception_features(torch.rand(2, 4, 8, 8), model=FakeInception())
    with pytest.raises(TypeError, match="uint8"):          # 0-255 clamped to [0, 1] would be all white
        inception_features(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), model=FakeInception())
    with pytest.raises(ValueError, match=r"\[N2 >= 2, D\]"):
        fid_from_features(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least 2"):
        fid(torch.rand(1, 3, 8, 8), torch.rand(3, 3, 8, 8), model=FakeInception())
