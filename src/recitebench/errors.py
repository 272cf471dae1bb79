"""The one exception type the CLI turns into a clean one-line message and a non-zero exit."""


class RecitebenchError(Exception):
    """A user-facing error: the message names the file, row or field that is wrong."""
