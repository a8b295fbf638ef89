import pytest
import torch

from rl_i2it.ops.metrics import binary_dice, dice, jacobian_determinant, jacobian_stats


def test_dice_analytic_per_label():
    a = torch.tensor([[0, 1, 1, 2, 2, 2]])
    b = torch.tensor([[0, 1, 2, 2, 2, 0]])
    d = dice(a, b)                                   # label 1: 2*1/(2+1); label 2: 2*2/(3+3)
    torch.testing.assert_close(d, torch.tensor([[2 / 3, 2 / 3]]))
    torch.testing.assert_close(dice(a, a, [1, 2]), torch.ones(1, 2))


def test_dice_absent_label_is_nan_and_exceptions():
    d = dice(torch.tensor([[1, 1]]), torch.tensor([[1, 0]]), [1, 5])
    assert d[0, 0] == pytest.approx(2 / 3) and torch.isnan(d[0, 1])
    with pytest.raises(ValueError):
        dice(torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="foreground"):
        dice(torch.zeros(1, 3), torch.zeros(1, 3))


def test_binary_dice():
    a = torch.zeros(2, 1, 4, 4)
    a[:, :, :2] = 1
    b = torch.zeros(2, 1, 4, 4)
    b[0, :, :2] = 0.9
    b[1, :, 1:3] = 0.9
    torch.testing.assert_close(binary_dice(a, b), torch.tensor([1.0, 0.5]))
    assert binary_dice(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)).item() == 1.0


def coords(shape, dtype=torch.float32) -> torch.Tensor:
    """The identity map ``x`` on a grid of ``shape``: ``[1, nd, *shape]``."""
    return torch.stack(torch.meshgrid(*[torch.arange(n, dtype=dtype) for n in shape], indexing="ij"))[None]


@pytest.mark.parametrize("shape", [(6, 6), (5, 5, 5)])
def test_jacobian_identity_and_linear(shape):
    nd = len(shape)
    assert torch.allclose(jacobian_determinant(torch.zeros(1, nd, *shape)), torch.ones(1, *shape))
    grid = coords(shape)
    # x + u(x) = 1.5 x  ->  det = 1.5^nd
    assert torch.allclose(jacobian_determinant(0.5 * grid), torch.full((1, *shape), 1.5 ** nd))


def test_jacobian_folding_counted():
    """Per field, the % with det J <= 0 (the CLI's "det J <= 0": a grid flattened to det 0 folds too)."""
    grid = coords((6, 6))
    u = torch.zeros(3, 2, 6, 6)
    u[0, 1] = -2 * grid[0, 1]        # x -> -x: det = -1 everywhere
    u[2, 1] = -grid[0, 1]            # x -> 0: det = 0 everywhere
    neg, std = jacobian_stats(u)
    assert neg.tolist() == [100.0, 0.0, 100.0] and std[0].isnan() and std[1] == 0.0 and std[2].isnan()


def test_kmeans_labels_order_by_intensity_and_survive_monotone_changes():
    from rl_i2it.ops.metrics import kmeans_labels
    img = torch.zeros(1, 1, 30, 30)
    img[..., 5:25, 5:25] = 0.5
    img[..., 10:20, 10:20] = 0.9
    lab = kmeans_labels(img, 3)
    assert lab.shape == (1, 30, 30)
    assert lab[0, 0, 0] == 0 and lab[0, 6, 6] == 1 and lab[0, 15, 15] == 2
    assert torch.equal(kmeans_labels(img ** 2.0 * 0.7 + 0.1, 3), lab)       # gamma + affine: same labels
    noisy = img + 0.03 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))
    assert (kmeans_labels(noisy, 3) == lab).float().mean() > 0.99
    with pytest.raises(ValueError):
        kmeans_labels(img.expand(1, 2, 30, 30), 3)


def test_mean_dice_averages_present_labels():
    from rl_i2it.ops.metrics import mean_dice
    a = torch.tensor([[[1, 1, 2, 0]], [[0, 0, 0, 0]]])
    b = torch.tensor([[[1, 0, 2, 0]], [[0, 0, 0, 0]]])
    d = mean_dice(a, b, [1, 2])
    assert torch.allclose(d, torch.tensor([(2 / 3 + 1) / 2, 1.0]))
    empty = torch.zeros(2, 1, 4, dtype=torch.long)             # all background, no labels named: 1, as promised
    assert torch.equal(mean_dice(empty, empty), torch.ones(2))


@pytest.mark.parametrize("nd", [2, 3])
def test_jacobian_of_a_linear_map_is_its_determinant(nd):
    """x -> A x with every entry of A in play (off-diagonal signs, the 3D cofactors): det J = det A."""
    shape = (6,) * nd
    a = torch.eye(nd, dtype=torch.float64) + 0.3 * torch.randn(nd, nd, generator=torch.Generator().manual_seed(nd),
                                                              dtype=torch.float64)
    u = torch.einsum("ik,bk...->bi...", a - torch.eye(nd, dtype=torch.float64), coords(shape, torch.float64))
    det = jacobian_determinant(u)
    assert abs(torch.linalg.det(a).item() - 1) > 0.1            # a map that is not a rotation or identity
    torch.testing.assert_close(det, torch.full((1, *shape), torch.linalg.det(a).item(), dtype=torch.float64))
