"""The one exception type that means "the user asked for something we cannot do"."""


class UserError(Exception):
    """Bad input from the user. Recipes print its message on one line and exit with status 2.

    The message says what is wrong and how to fix it; no traceback is shown.
    """
