"""The one exception type for mistakes a user can fix (config, data, environment)."""


class UserInputError(ValueError):
    """A problem in the user's config, data or environment.

    The message is one line that names the key, file or column at fault and how to fix it;
    ``python -m pipeline.sweep`` prints it without a traceback and exits with code 2.
    """
