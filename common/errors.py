"""The one exception type that means "the user asked for something we cannot do"."""


class UserError(Exception):
    """Bad input from the user. Recipes print its message on one line and exit with status 2.

    The message says what is wrong and how to fix it; no traceback is shown.
    """


def first_line(error: Exception, limit: int = 160) -> str:
    """An exception's first line for a one-line message, cut to `limit` characters (it may quote a whole line of
    the user's file); the exception's type when it has no message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."
