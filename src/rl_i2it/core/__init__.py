"""The RL-I2IT algorithm, task-agnostic: meta policy, twin critic, replay, SAC update, trainer."""
