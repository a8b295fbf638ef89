import pytest
import torch

from rl_i2it.ops.warp import compose, identity_grid, integrate_velocity, invert_field, resize_field, warp


def const_field(shape, vec, b=1):
    nd = len(shape)
    return torch.tensor(vec, dtype=torch.float64).view(1, nd, *([1] * nd)).expand(b, nd, *shape).clone()


@pytest.mark.parametrize("shape", [(6, 7), (4, 5, 6)])
def test_smoke_zero_field_is_identity(shape):
    img = torch.rand(2, 3, *shape)
    out = warp(img, torch.zeros(2, len(shape), *shape))
    assert out.shape == img.shape
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


def test_integer_translation_2d_is_exact_shift():
    img = torch.arange(36.0).view(1, 1, 6, 6)
    out = warp(img, const_field((6, 6), [1.0, -2.0]).float())   # out(y, x) = img(y + 1, x - 2)
    torch.testing.assert_close(out[0, 0, :5, 2:], img[0, 0, 1:, :4])
    assert out[0, 0, 5].abs().max() < 1e-5 and out[0, 0, :, :2].abs().max() < 1e-5   # zeros outside


def test_translation_3d_axis_order():
    img = torch.zeros(1, 1, 5, 5, 5)
    img[0, 0, 3, 1, 2] = 1.0
    out = warp(img, const_field((5, 5, 5), [1.0, 0.0, 0.0]).float())
    assert out[0, 0, 2, 1, 2] == 1.0 and out.sum() == 1.0


def test_half_pixel_shift_interpolates_linearly():
    img = torch.tensor([[0.0, 2.0, 4.0, 6.0]]).view(1, 1, 1, 4).expand(1, 1, 3, 4).contiguous()
    out = warp(img, const_field((3, 4), [0.0, 0.5]).float())
    torch.testing.assert_close(out[0, 0, 1, :3], torch.tensor([1.0, 3.0, 5.0]))


def test_nearest_keeps_labels():
    lab = torch.randint(0, 4, (1, 1, 8, 8)).float()
    out = warp(lab, torch.rand(1, 2, 8, 8) * 2 - 1, mode="nearest")
    assert set(out.unique().tolist()) <= set(lab.unique().tolist())


def test_integer_labels_warp_in_their_own_dtype():
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 3000, (2, 1, 9, 11), generator=g)             # non-contiguous label values
    u = torch.randn(2, 2, 9, 11, generator=g) * 2
    out = warp(lab, u, mode="nearest")
    assert out.dtype == torch.int64
    assert torch.equal(out, warp(lab.double(), u.double(), mode="nearest").long())
    assert torch.equal(warp(lab.short(), torch.zeros_like(u), mode="nearest"), lab.short())
    with pytest.raises(TypeError, match="mode='nearest'"):
        warp(lab, u)                                                     # bilinear labels would mix values


def test_batch_broadcast():
    img = torch.rand(1, 1, 5, 5)
    out = warp(img, torch.zeros(3, 2, 5, 5))
    assert out.shape == (3, 1, 5, 5)


def test_compose_of_translations_adds():
    a, b = const_field((9, 9), [0.5, -1.0]), const_field((9, 9), [1.25, 0.5])
    torch.testing.assert_close(compose(a, b), a + b)


def test_compose_matches_sequential_warps():
    torch.manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    img = (torch.sin(xx / 5) * torch.cos(yy / 7))[None, None]
    u1 = torch.nn.functional.avg_pool2d(torch.randn(1, 2, 40, 40), 9, 1, 4) * 3
    u2 = torch.nn.functional.avg_pool2d(torch.randn(1, 2, 40, 40), 9, 1, 4) * 3
    seq = warp(warp(img, u1), u2)
    once = warp(img, compose(u1, u2))
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (seq[inner] - once[inner]).abs().max() < 0.01


def test_integrate_velocity_zero_and_constant():
    v = const_field((8, 8), [1.0, 2.0])
    torch.testing.assert_close(integrate_velocity(v, 5), v)
    assert integrate_velocity(torch.zeros(1, 2, 8, 8)).abs().max() == 0


def test_resize_field_scales_displacements():
    u = const_field((5, 5), [1.0, 2.0]).float()
    r = resize_field(u, (10, 15))
    torch.testing.assert_close(r, const_field((10, 15), [2.0, 6.0]).float())


@pytest.mark.parametrize("big, small, shift", [(512, 64, (3.0, -2.0)), (512, 64, (9.0, 7.0)), (160, 128, (3.0, -2.0))])
def test_a_model_grid_registration_comes_back_exact_at_full_size(big, small, shift):
    """Images shrunk to the model grid by ``to_grid`` and the field brought back by ``resize_field``
    share one geometry, at whole and fractional ratios: the exact model-grid shift, resized, is the
    full-size shift (N / n times it), and warps the full-size moving image onto the fixed one."""
    from rl_i2it.data.pairs import to_grid
    full = torch.as_tensor(shift) * big / small                      # (24, -16), (72, 56), (3.75, -2.5) voxels
    yy, xx = identity_grid((big, big)).float()
    width = 40.0 * big / 512
    blob = lambda y0, x0: torch.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * width ** 2))
    c = big / 2
    fixed, moving = blob(c - 6, c + 4), blob(c - 6 + full[0], c + 4 + full[1])   # moving(x + full) = fixed(x)
    f, m = to_grid(fixed, small), to_grid(moving, small)
    d = const_field((small, small), list(shift)).float()
    q = slice(small // 4, 3 * small // 4)
    assert (warp(m[None, None], d)[0, 0] - f)[q, q].abs().max() < 3e-3      # the model-grid answer
    back = resize_field(d, (big, big))
    torch.testing.assert_close(back, const_field((big, big), full.tolist()).float())
    Q = slice(big // 4, 3 * big // 4)
    tol = 1e-5 if bool((full == full.round()).all()) else 3e-3      # a fractional shift: bilinear's own error
    assert (warp(moving[None, None], back)[0, 0] - fixed)[Q, Q].abs().max() < tol


def test_identity_grid_values():
    g = identity_grid((2, 3))
    assert g.shape == (2, 2, 3) and g[1, 1, 2] == 2 and g[0, 1, 2] == 1


@pytest.mark.parametrize("bad", [torch.zeros(1, 3, 5, 5), torch.zeros(1, 2, 5), torch.zeros(1, 2, 4, 4, 4)])
def test_exception_bad_field(bad):
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 1, 5, 5), bad)


def test_exception_grid_mismatch():
    with pytest.raises(ValueError, match="grid"):
        warp(torch.zeros(1, 1, 5, 6), torch.zeros(1, 2, 5, 5))


@pytest.mark.parametrize("nd", [2, 3])
def test_gradcheck_image_and_field(nd):
    torch.manual_seed(0)
    shape = (4,) * nd
    img = torch.rand(1, 1, *shape, dtype=torch.float64, requires_grad=True)
    # non-integer displacements keep every sample strictly inside a linear piece
    disp = (torch.rand(1, nd, *shape, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda i, d: warp(i, d, padding="border"), (img, disp))


def test_gradcheck_compose():
    torch.manual_seed(0)
    a = (torch.rand(1, 2, 4, 4, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    b = (torch.rand(1, 2, 4, 4, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(compose, (a, b))


def test_the_sampling_grid_is_made_once_and_works_after_inference_mode():
    """``warp`` takes its grid_sample constants from a cache (no tensor built from Python numbers
    per call: on a GPU that waits for the queue); constants first made under inference mode still
    serve a warp that autograd differentiates."""
    from rl_i2it.ops.warp import sampling_grid
    sampling_grid.cache_clear()
    img = torch.rand(2, 1, 7, 9)
    with torch.inference_mode():
        warp(img, torch.zeros(2, 2, 7, 9))
    u = torch.full((2, 2, 7, 9), 0.25, requires_grad=True)
    warp(img, u).sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    assert sampling_grid.cache_info().hits >= 1 and sampling_grid.cache_info().currsize == 1
    ident, scale = sampling_grid((7, 9), torch.device("cpu"), torch.float32)
    assert ident.shape == (2, 7, 9) and scale.shape == (1, 2, 1, 1)
    torch.testing.assert_close(ident[0, :, 0], torch.linspace(-1, 1, 7))
    torch.testing.assert_close(ident[1, 0], torch.linspace(-1, 1, 9))
    torch.testing.assert_close(warp(img, torch.zeros(2, 2, 7, 9)), img)


@pytest.mark.parametrize("shape,magnitude", [((48, 40), 4.0), ((24, 28, 20), 3.0), ((32, 32, 32), 8.0)])
def test_invert_field_undoes_a_diffeomorphism(shape, magnitude):
    """The inverse of exp(v) is exp(-v): ``invert_field`` finds it (up to scaling and squaring's
    own error, which exp(-v) shares), takes a warped image back, and its residual says it solved
    v(y) = -u(y + v(y)). The 32^3 field moves up to 9 voxels: undamped iteration leaves a residual
    of 17 voxels there."""
    from rl_i2it.data.pairs import bspline_upsample
    g = torch.Generator().manual_seed(len(shape))
    nd = len(shape)
    vel = bspline_upsample(torch.randn(1, nd, *(5,) * nd, generator=g) * magnitude, shape)
    u, exact = integrate_velocity(vel), integrate_velocity(-vel)
    v, residual = invert_field(u)
    assert v.shape == u.shape and residual.shape == (1, *shape)
    inside = torch.isfinite(residual)                 # not what came from outside the grid
    assert inside.float().mean() > 0.75 and residual[inside].max() < 1e-2 and residual[inside].mean() < 1e-4
    inner = (slice(None), slice(None)) + tuple(slice(6, -6) for _ in shape)
    own = (exact + warp(u, exact, padding="border")).norm(dim=1)[:, None][inner]   # exp(-v)'s own residual
    assert (v - exact)[inner].norm(dim=1).max() < own.max() and (v - exact)[inner].abs().mean() < own.mean()
    grids = torch.meshgrid(*[torch.linspace(0, 3, s) for s in shape], indexing="ij")
    image = sum(torch.sin(gr + i) for i, gr in enumerate(grids))[None, None]
    back = warp(warp(image, u), v)
    err = (back - image)[inner].abs() / (image.max() - image.min())       # two interpolations, one squeezing
    assert err.mean() < 0.01 and err.max() < 0.1, (err.mean(), err.max())
    assert (-u - exact)[inner].abs().mean() > 10 * (v - exact)[inner].abs().mean()   # not just -u


def test_invert_field_residual_shows_a_fold():
    """A field that folds (two places go to one) has no inverse there: the residual says so."""
    u = torch.zeros(1, 2, 32, 32)
    u[0, 1, :, 12:20] = torch.linspace(0, 12, 8)          # columns 12-19 sample 12..31: a fold over 20-31
    _, residual = invert_field(u)
    assert residual.max() > 1 and (residual > 0.1).float().mean() < 0.5


def test_invert_field_marks_what_came_from_outside():
    """A shift of 5 columns: the moving image's first 5 columns came from outside the grid and
    have no inverse (the border-extended equation holds there all the same): infinite residual."""
    u = torch.zeros(1, 2, 32, 32)
    u[:, 1] = 5.0
    v, residual = invert_field(u)
    assert torch.allclose(v[:, 1], torch.full((1, 32, 32), -5.0))
    assert torch.isinf(residual[0, :, :5]).all() and (residual[0, :, 5:] < 1e-6).all()
