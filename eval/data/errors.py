"""The one error a dataset raises (re-exported as eval.data.DataError), apart so every module here can raise it
without importing the package above them."""


class DataError(Exception):
    """A dataset cannot be used; the message names the file, the line and what was expected."""
