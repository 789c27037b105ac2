"""A notification as the job's log stores it."""

from __future__ import annotations

import json

import pytest

from service.domain.notifications import Notification

pytestmark = pytest.mark.in_process


@pytest.mark.parametrize("caller", ["py", 'a "quoted" \\ name', "é 漢字 🎉", "tab\tnl\n\x01"])
def test_a_notification_is_stored_as_compact_json_of_its_fields(caller: str) -> None:
    notification = Notification("j-1", 2, 5, caller)
    text = notification.to_json()
    assert json.loads(text) == {"job_id": "j-1", "index": 2, "count": 5, "message": f"Notification 2/5 for {caller}"}
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False).encode()
