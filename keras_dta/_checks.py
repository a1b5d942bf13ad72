"""Argument checks shared by the library, with Keras-style messages."""

import numbers


def check_int(name, value, minimum=1, allow_none=False):
    """Raises `ValueError` unless `value` is an integer >= `minimum` (or None if allowed).

    Args:
        name: the argument's name, used in the message.
        value: the value to check; a bool is not an integer here.
        minimum: the smallest value accepted.
        allow_none: accept `None` too.

    Returns:
        `value`, unchanged.
    """
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if allow_none:
            what = f"None or {what}"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")
    return value
