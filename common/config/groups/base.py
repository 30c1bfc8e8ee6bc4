"""The base of every group of settings."""


class Group:
    """A group of settings; `check()` holds the rules between its settings (none unless a group has some)."""

    def check(self) -> None:
        return None
