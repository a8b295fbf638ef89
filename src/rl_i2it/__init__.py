"""rl-i2it: image-to-image translation with deep reinforcement learning (RL-I2IT).

Library use::

    from rl_i2it import load_config, Trainer, load_policy, train_run
    cfg = load_config("configs/digits.toml", {"train": {"minutes": 5}})
    Trainer(cfg, "runs/digits").train()                 # writes runs/digits/policy.pt
    train_run(cfg, "runs/digits")                       # the same, or train.fine_tunes fine-tunes averaged
    task, policy, cfg = load_policy("runs/digits")      # planner + actor, eval mode
    from rl_i2it.tasks.digits import register
    out = register(task, policy, fixed, moving, steps=10)   # [B,1,28,28] in [0,1] -> steps, field, dice, dice_before

The inference functions (``register``, ``predict``, ``stylize``, ...) take float images in [0, 1]
or uint8 0-255, and raise ``TypeError`` / ``ValueError`` naming the argument for anything else
(0-255 floats, a missing batch axis, another size than the model's).
"""
__version__ = "0.1.0"

__all__ = ["load_config", "Trainer", "train_run", "load_policy", "UserError"]


def __getattr__(name):
    if name == "load_config":
        from .config import load_config
        return load_config
    if name in ("Trainer", "train_run", "load_policy"):
        from .core import trainer
        return getattr(trainer, name)
    if name == "UserError":
        from .errors import UserError
        return UserError
    raise AttributeError(name)


def __dir__():
    return sorted([*globals(), *__all__])       # tab completion sees the lazy names too
