"""The CPU budget of one check, in a module of its own: an exception class stays an ordinary Python
class when the hot modules of the rules are compiled (``scripts/build_native.py``)."""


class CheckBudgetExceeded(RuntimeError):
    """A listing used up its CPU budget; the caller answers with an error instead of waiting."""
