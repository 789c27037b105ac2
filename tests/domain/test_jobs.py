"""The job record's ids, and the arguments' model with the configured limits."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from service.domain.jobs import JOB_ID_PATTERN, JobSpec, SpecLimits, new_job_id, spec_model

pytestmark = pytest.mark.in_process

LIMITED: type[JobSpec] = spec_model(SpecLimits(max_count=1000, min_interval=0.5, max_interval=10, max_caller_length=20))


def test_job_ids_are_uuid7_and_ordered_by_time() -> None:
    ids = []
    for _ in range(3):
        ids.append(new_job_id())
        time.sleep(0.002)
    assert ids == sorted(ids)
    for job_id in ids:
        assert re.fullmatch(JOB_ID_PATTERN, job_id)
        parsed = uuid.UUID(job_id)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert abs(int(job_id[:12], 16) / 1000 - time.time()) < 5  # the timestamp is the creation time


def test_job_ids_created_in_the_same_millisecond_differ() -> None:
    ids = {new_job_id() for _ in range(10_000)}
    assert len(ids) == 10_000


@pytest.mark.parametrize(
    ("arguments", "field", "named"),
    [
        ({"count": 1001}, "count", "at most 1000 (SERVICE_MAX_COUNT)"),
        ({"count": 0}, "count", "greater than or equal to 1"),
        ({"count": "5"}, "count", "valid integer"),
        ({"count": True}, "count", "valid integer"),
        ({"count": 2.5}, "count", "fractional part"),
        ({"interval": 11}, "interval", "SERVICE_MAX_INTERVAL"),
        ({"interval": 0.1}, "interval", "between 0.5 and 10 seconds (SERVICE_MIN_INTERVAL"),
        ({"interval": float("nan")}, "interval", "finite number"),
        ({"interval": float("inf")}, "interval", "finite number"),
        ({"caller": "x" * 21}, "caller", "at most 20 characters (SERVICE_MAX_CALLER_LENGTH)"),
        ({"caller": "   "}, "caller", "must not be blank"),
        ({"caller": "a\x00b"}, "caller", "U+0000 at position 1 is a control character"),
        ({"caller": "red\x1b[31m"}, "caller", "U+001B at position 3"),
        ({"caller": "two\r\nlines"}, "caller", "U+000D"),
        ({"caller": "lone \ud800"}, "caller", "unicode string"),
        ({"caller": "para\u2029graph"}, "caller", "U+2029"),
    ],
)
def test_the_limited_model_refuses_naming_field_and_limit(arguments: dict[str, Any], field: str, named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        LIMITED.model_validate({"interval": 1, "count": 1, "caller": "ok", **arguments})
    (error,) = refused.value.errors()
    assert error["loc"] == (field,)
    assert named in error["msg"]


def test_the_limited_model_accepts_what_json_schema_calls_valid() -> None:
    spec = LIMITED.model_validate({"interval": 1, "count": 5.0, "caller": "👩\u200d💻 Zoë"})
    assert (spec.count, type(spec.count)) == (5, int)
    assert isinstance(spec, JobSpec)


def test_the_limited_models_schema_states_the_limits() -> None:
    properties = LIMITED.model_json_schema()["properties"]
    assert (properties["count"]["minimum"], properties["count"]["maximum"]) == (1, 1000)
    assert (properties["interval"]["minimum"], properties["interval"]["maximum"]) == (0.5, 10)
    assert (properties["caller"]["minLength"], properties["caller"]["maxLength"]) == (1, 20)
    assert "SERVICE_MAX_COUNT" in properties["count"]["description"]
