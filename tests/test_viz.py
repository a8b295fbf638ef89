import json

import matplotlib

from rl_i2it.viz import plot_curves

matplotlib.use("Agg")


def _run(path, rows):
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_curves_one_colour_per_run_in_every_panel(tmp_path, monkeypatch):
    """A run missing from a panel (no critic without RL) must not take another run's colour there,
    and a run of one logged row is drawn (a marker: a one-point line shows nothing)."""
    one = _run(tmp_path / "one", [{"seconds": s, "score": -s, "aux_loss": 1.0} for s in (60, 120)])
    rl = _run(tmp_path / "rl", [{"seconds": 60, "score": -1, "aux_loss": 2.0, "critic_loss": 0.5, "alpha": 0.1}])
    figs = []
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    plot_curves([one, rl], tmp_path / "curves.png", ["one-step", "RL-I2IT"])
    score, aux, critic, alpha = figs[0].axes
    colour = {ln.get_label(): ln.get_color() for ln in score.lines}
    assert colour["one-step"] != colour["RL-I2IT"]
    for ax in (aux, critic, alpha):
        for ln in ax.lines:
            assert ln.get_color() == colour[ln.get_label()], (ax.get_title(), ln.get_label())
    assert [ln.get_label() for ln in critic.lines] == ["RL-I2IT"]
    assert critic.lines[0].get_marker() == "o"          # one row: drawn as a point
    assert score.lines[0].get_marker() in ("None", None, "")
