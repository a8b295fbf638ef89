"""``python -m rl_i2it``: the ``rl-i2it`` command."""
import sys

from .cli import main

sys.exit(main())
