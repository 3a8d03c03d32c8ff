"""Errors that reach the user as one line and exit code 2 (see ``umsrep.cli``)."""


class UmsrepError(Exception):
    """Base class for expected, user-facing errors (bad recipe, bad data, bad run dir)."""

    exit_code = 2


class RecipeError(UmsrepError):
    """The recipe is invalid. The message names the recipe file and field path."""


class DataError(UmsrepError):
    """A data file or data set is unusable. The message names the file."""


class RunDirError(UmsrepError):
    """A run directory is missing something or does not match what was asked."""
