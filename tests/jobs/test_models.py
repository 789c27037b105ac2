"""The job record's ids."""

from __future__ import annotations

import re
import time
import uuid

from service.jobs.models import JOB_ID_PATTERN, new_job_id


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
