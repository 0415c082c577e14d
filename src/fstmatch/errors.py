"""The one exception type that means "the user asked for something wrong"."""


class UserError(Exception):
    """A mistake in the user's input (arguments, files, configs).

    The CLI prints the message without a traceback and exits with status 2; library callers get
    an ordinary exception. Messages say what was wrong and what was expected.
    """
