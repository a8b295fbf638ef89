"""Applications as plug-ins: one module per task, found by name."""
from __future__ import annotations

import importlib

from ..errors import UserError

TASKS = {"digits": "rl_i2it.tasks.digits:DigitsTask",
         "registration": "rl_i2it.tasks.registration:RegistrationTask",
         "inpainting": "rl_i2it.tasks.inpainting:InpaintingTask",
         "translation": "rl_i2it.tasks.translation:TranslationTask",
         "style": "rl_i2it.tasks.style:StyleTask"}


def task_class(name: str):
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)
