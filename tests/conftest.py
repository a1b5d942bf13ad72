"""pytest's view of the shared test helpers (they live in `tests/helpers.py`, importable)."""

from helpers import (  # noqa: F401
    FIXTURES,
    assert_grad_close,
    channels_last,
    elementwise_grad,
    load_fixture,
    params,
    run_layer_test,
    vjp,
)
