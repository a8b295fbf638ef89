"""The one exception type the CLI turns into a single line and exit code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a value, a checkpoint): say what and where, never a traceback."""
