"""bench/registration.py's pieces on tiny pairs: every method's row on the same pairs, and the
verdict lines that say which of the issue's targets a table meets."""
import pytest

from conftest import load_bench
from rl_i2it.data.pairs import PairSet
from test_cli_register import reg_run  # noqa: F401  (a tiny trained 2D registration run)


@pytest.fixture(scope="module")
def bench():
    return load_bench("registration")


def row(dice, secs, folds=0.0):
    return {"dice": dice, "dice_std": 0.0, "neg_jac_pct": folds, "std_log_jac": 0.1, "sec_per_pair": secs}


def test_run_set_scores_every_method_on_the_same_pairs(bench, reg_run, reg_pairs, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.classical, "available", lambda tool: False)     # no ANTs / elastix here
    ps = reg_pairs["test"]
    pairs = PairSet(ps.fixed[:3], ps.moving[:3], ps.fixed_labels[:3], ps.moving_labels[:3], name="tiny")
    res = bench.run_set("tiny", pairs, {"onestep": reg_run, "norl": reg_run, "rl": reg_run}, "cpu", tmp_path)
    assert list(res) == ["identity", "onestep", "norl_t10", "rl_t1", "rl_t10", "rl_t20", "rl_adaptive"]
    for name, r in res.items():
        assert 0 < r["dice"] <= 1 and r["pairs"] == 3, name
    # the same run scored as a baseline at T=1 / T=10 gives exactly its own rows (mean plan)
    assert res["onestep"]["dice"] == res["rl_t1"]["dice"] and res["norl_t10"]["dice"] == res["rl_t10"]["dice"]
    assert res["rl_t1"]["params"] > 0 and (tmp_path / "tiny.png").exists()


def test_verdict_names_each_target_met_or_not(bench):
    res = {"syn": row(0.86, 0.50), "onestep": row(0.83, 0.003), "elastix": row(0.90, 2.5),
           "rl_t10": row(0.87, 0.024)}
    lines = bench.verdict("b", res, dims=2)
    assert "SyN 0.860 (met)" in lines[0] and "ratio 0.048, target < 0.05: met" in lines[0]
    assert "0.870 vs 0.850 (met)" in lines[1] and "12x" not in lines[1]
    assert "NOT met; a 3D target only" in lines[2] and "target < 0.5: met" in lines[3]
    res["rl_t10"] = row(0.84, 0.026, folds=0.01)          # below one-step + 0.02, slower than 1/20 of SyN
    lines = bench.verdict("b", res, dims=2, diffeomorphic=True)
    assert "target < 0.05: NOT met" in lines[0] and "0.840 vs 0.850 (NOT met)" in lines[1]
    assert "target = 0: NOT met" in lines[3]
    lines = bench.verdict("l", {"onestep": row(0.83, 0.2), "rl_t10": row(0.86, 2.2)}, dims=3)
    assert "11.0x the one-step's (target <= 12x: met)" in lines[0] and len(lines) == 2
    lines = bench.verdict("l", {"onestep": row(0.83, 0.2), "rl_t10": row(0.86, 2.6)}, dims=3)
    assert "13.0x the one-step's (target <= 12x: NOT met)" in lines[0]
    assert bench.verdict("x", {"syn": row(0.8, 1.0)}) == []


def test_affine_bench_moves_pairs_within_its_bounds_and_labels_with_them(reg_pairs):
    """bench/affine.py: the random maps keep to their bounds (rotation, scale, shift about the
    centre), and a moved pair's labels move with its image (nearest: the same ids)."""
    import math

    import torch
    from rl_i2it.ops.affine import affine_field
    aff = load_bench("affine")
    maps = aff.random_affines(50, 2, 32, 10, 0.08, 0.06, seed=0)
    a, t = maps[:, :, :2], maps[:, :, 2] + (maps[:, :, :2] @ torch.full((2,), 15.5)) - 15.5   # shift about the centre
    sv = torch.linalg.svdvals(a)
    assert sv.min() >= 0.92 - 1e-5 and sv.max() <= 1.08 + 1e-5 and t.abs().max() <= 0.06 * 32 + 1e-4
    angle = torch.atan2(a[:, 1, 0] / sv.prod(1).sqrt(), a[:, 0, 0] / sv.prod(1).sqrt()).abs().max()
    assert math.radians(4) < angle < math.radians(10 + 5)     # drawn up to 10 degrees (scales tilt the estimate)
    assert torch.equal(maps, aff.random_affines(50, 2, 32, 10, 0.08, 0.06, seed=0))
    ps = reg_pairs["test"]
    moved = aff.moved(ps, maps[: len(ps)])
    assert torch.equal(moved.fixed, ps.fixed) and moved.moving.dtype == torch.uint8
    assert set(moved.moving_labels.unique().tolist()) <= set(ps.moving_labels.unique().tolist())
    u = affine_field(maps[: len(ps)], ps.shape)
    want = aff.warp(ps.moving_labels[:, None].float(), u, mode="nearest")[:, 0]
    assert torch.equal(moved.moving_labels.long(), want.long()) and not torch.equal(moved.moving, ps.moving)
