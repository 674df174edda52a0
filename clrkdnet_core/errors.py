"""Exceptions raised for bad user input.

Every error a user can cause (a wrong preset name, a truncated checkpoint, a missing dataset file, an image
of the wrong type) is a :class:`ClrkdnetError`, so command-line tools can print its one-line message and exit
non-zero instead of showing a traceback.
"""


class ClrkdnetError(Exception):
    """Base class of all user-facing errors."""


class PresetError(ClrkdnetError):
    """Unknown preset name or malformed preset file."""


class CheckpointError(ClrkdnetError):
    """A checkpoint that cannot be read or does not match the network."""


class InputError(ClrkdnetError):
    """An image or tensor of the wrong shape, type or colour layout."""


class DatasetError(ClrkdnetError):
    """A missing or malformed dataset file."""


class BackendError(ClrkdnetError):
    """An inference backend that is not installed or cannot run here."""
