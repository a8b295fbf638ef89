import pytest
import torch

from rl_i2it.errors import UserError
from rl_i2it.ops.metrics import binary_dice
from rl_i2it.ops.warp import warp
from rl_i2it.tasks.digits import DigitsTask, eval_pairs, evaluate, similarity_transform
from conftest import SMALL


@pytest.fixture
def task(digits):
    return DigitsTask(dict(SMALL, transform="cross"), data=digits)


def test_next_state_warps_the_original_with_the_accumulated_field(task):
    env = task.make_env(4, torch.Generator().manual_seed(0))
    s0 = env.reset()
    half = torch.zeros(4, 2, 28, 28)
    half[:, 1] = 0.5
    env.step(half)
    s2, _, _, _ = env.step(half)
    one = torch.zeros(4, 2, 28, 28)
    one[:, 1] = 1.0
    torch.testing.assert_close(s2["current"], warp(env.moving, one), atol=1e-5, rtol=0)   # no double blur
    assert not torch.allclose(s2["current"], warp(warp(env.moving, half), half), atol=1e-3)
    assert torch.equal(s2["fixed"], s0["fixed"])


def test_reward_is_scaled_dice_improvement_and_done_gives_bonus(task):
    o = task.options
    env = task.make_env(6, torch.Generator().manual_seed(1))
    env.reset()
    before = env.score.clone()
    _, r0, d0, _ = env.step(torch.zeros(6, 2, 28, 28))          # no motion: no reward
    assert torch.allclose(r0, torch.zeros(6)) and not d0.any()
    shift = torch.zeros(6, 2, 28, 28)
    shift[:, 0] = 1.5
    _, r, d, info = env.step(shift)
    expected = o.reward_scale * (info["score"] - before) + o.bonus * (info["score"] > o.done_threshold).float()
    torch.testing.assert_close(r, expected)
    after = info["score"].clone()
    assert not torch.allclose(after, before)                    # so a score left at the reset's would show
    _, r, d, info = env.step(shift)                              # the next step's reward: from where it stood
    expected = o.reward_scale * (info["score"] - after) + o.bonus * (info["score"] > o.done_threshold).float()
    torch.testing.assert_close(r, expected)
    env.start(env.fixed, env.fixed.clone())                     # moving == fixed: Dice 1, done
    _, r, d, _ = env.step(torch.zeros(6, 2, 28, 28))
    assert d.all() and torch.allclose(r, torch.full((6,), o.bonus))


def test_pairs_respect_the_transform(digits):
    for kind, check in [("inner", lambda f, m: (f == m).all()), ("cross", lambda f, m: (f != m).all())]:
        t = DigitsTask(dict(SMALL, transform=kind), data=digits)
        env = t.make_env(64, torch.Generator().manual_seed(0))
        fi, mi = env.sample_pair_indices(64)
        assert check(env.labels[fi], env.labels[mi])


@pytest.mark.parametrize("kind,per_moving", [("random", 10), ("inner", 1), ("cross", 9)])
def test_protocol_pairs(task, kind, per_moving):
    fix, mov, fc, mc = eval_pairs(task, n_moving=12, transform=kind)
    assert fix.shape == mov.shape == (12 * per_moving, 1, 28, 28)
    if kind == "inner":
        assert torch.equal(fc, mc)
    f2, m2, _, _ = eval_pairs(task, n_moving=12, transform=kind)
    assert torch.equal(m2, mov)                                  # seeded: the same pairs every time


def test_similarity_transform():
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 10:18, 12:15] = 1
    same = similarity_transform(img, torch.ones(1), torch.zeros(1))
    torch.testing.assert_close(same, img, atol=1e-5, rtol=0)
    rot = similarity_transform(img, torch.ones(1), torch.full((1,), 90.0))
    assert binary_dice(rot, torch.rot90(img, 1, (2, 3))) > 0.9 or binary_dice(rot, torch.rot90(img, -1, (2, 3))) > 0.9
    small = similarity_transform(img, torch.full((1,), 0.5), torch.zeros(1))
    assert small.sum().item() == pytest.approx(img.sum().item() / 4, rel=0.15)


def test_identity_evaluation_and_bad_options(task, digits):
    r = evaluate(task, None, steps=(1, 5), n_moving=10, transform="inner")
    assert r["dice"][5]["mean"] == r["dice"][0]["mean"] and len(r["dice"][1]["per_class"]) == 10
    with pytest.raises(UserError, match="transform"):
        DigitsTask({"transform": "spin"})
    with pytest.raises(UserError, match="28x28"):
        task.check_image(torch.zeros(1, 32, 32), "x")
    assert sum(f.nbytes for f in task.state_fields().values()) == 2 * 28 * 28
    from rl_i2it.data.mnist import Digits
    few = digits.test_y < 5                                           # a user's test files of digits 0-4 only
    half = DigitsTask(dict(SMALL, transform="cross"), data=Digits(digits.train_x, digits.train_y,
                                                                   digits.test_x[few], digits.test_y[few]))
    with pytest.raises(UserError, match=r"test split lacks classes \[5, 6, 7, 8, 9\]"):   # not an IndexError
        evaluate(half, None, steps=(1,), n_moving=10)


def test_validation_digits_are_held_out_of_training(task, digits):
    tr, va = task.split_arrays("train")[0], task.split_arrays("valid")[0]
    assert len(tr) + len(va) == len(digits.train_x) and len(va) == len(digits.train_x) // 6
    assert torch.equal(torch.cat([tr, va]), torch.from_numpy(digits.train_x))
    f, m, _, _ = eval_pairs(task, n_moving=5, split="valid", transform="random")
    assert f.shape[0] == 50
    with pytest.raises(UserError, match="split"):
        task.split_arrays("holdout")


def test_the_atlases_are_the_first_digit_of_each_class():
    """the protocol's ten atlases are the FIRST test digit of each class (other atlases give
    other Dice than the paper's protocol, and than earlier runs' results)."""
    from rl_i2it.tasks.digits import atlas_indices
    labels = torch.tensor(list(range(10)) * 3)[torch.randperm(30, generator=torch.Generator().manual_seed(0))]
    want = [int(torch.nonzero(labels == c).flatten().min()) for c in range(10)]
    assert atlas_indices(labels).tolist() == want
