"""The exceptions the CLI turns into a single line: ``UserError`` (exit 2) and ``Stopped`` (exit 130)."""


class UserError(Exception):
    """Bad input from the user (a file, a value, a checkpoint): say what and where, never a traceback."""


class Stopped(KeyboardInterrupt):
    """A Ctrl-C that training has answered by saving its checkpoint: the caller stops too (a bench or
    a series of fine-tunes goes no further) and the same command resumes."""
