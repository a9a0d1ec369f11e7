"""Errors a user can fix. The CLI prints their message as one line and exits with their code."""


class UserError(Exception):
    """Bad input from the user: flag, config key or value. Exit code 2."""

    exit_code = 2


class DataNotFoundError(UserError):
    """A dataset or weight file is missing and cannot be downloaded."""

    exit_code = 3


class DataCorruptError(UserError):
    """A dataset file exists but is not what its format promises."""

    exit_code = 3


class TrainingDivergedError(Exception):
    """A loss became NaN or infinite. Exit code 4; the run folder keeps its last good checkpoint."""

    exit_code = 4
