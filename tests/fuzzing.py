"""What the fuzz tests share: the JSON values they generate, their settings, and the service they run against."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from harness.service import ServiceProcess, running_service

UVICORN_REFUSAL = "Invalid HTTP request received."
"""What uvicorn answers, in plain text and before the app sees anything, to a request it cannot parse."""

# JSON values as a parser sees them: with NaN, infinities, numbers that overflow to infinity or
# past 64 bits, and strings with lone surrogates (valid JSON, `"\ud800"`, that no UTF-8 can carry),
# controls and padding.
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e309, -1e309, 2**63, -(2**63) - 1]),
)
STRINGS = st.one_of(
    st.text(max_size=20), st.sampled_from(["\ud800", "a\udfffb", "\x00", "\x1b[2J", " ", "\r\n", "../.."])
)
VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
    max_leaves=6,
)


def fuzz(max_examples: int) -> settings:
    """Reproducible runs: a fixed seed, no example database, no deadline (a real server answers)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@contextmanager
def fuzzed_service(workdir: Path) -> Iterator[ServiceProcess]:
    """The real service with small limits, so that every job a fuzzer starts ends within a second."""
    limits = {"SERVICE_MAX_COUNT": "3", "SERVICE_MAX_INTERVAL": "0.05", "SERVICE_MAX_JOBS": "10000"}
    with running_service(workdir, **limits) as service:
        yield service
