"""A share of a limit: when it asks the store, for how much, and what it gives back."""

from __future__ import annotations

import pytest

from service.stores.shares import MAX_SPARE, Share

pytestmark = pytest.mark.in_process


def test_a_small_limit_keeps_no_spare_so_every_admission_asks() -> None:
    share = Share(limit=15)
    assert share.spare == 0
    assert not share.has_room
    assert (share.needed, share.wanted) == (1, 1)
    share.granted = 1
    share.take()
    assert not share.has_room
    assert (share.needed, share.wanted) == (2, 2)


def test_a_large_limit_keeps_a_sixteenth_spare_up_to_the_most() -> None:
    assert Share(limit=160).spare == 10
    assert Share(limit=10_000).spare == MAX_SPARE


def test_it_asks_for_one_more_job_and_the_spare_within_the_limit() -> None:
    share = Share(limit=64, granted=3, running=3)  # spare 4
    assert (share.needed, share.wanted) == (4, 8)
    nearly_full = Share(limit=64, granted=62, running=62)
    assert (nearly_full.needed, nearly_full.wanted) == (63, 64)


def test_jobs_within_the_share_need_no_asking() -> None:
    share = Share(limit=64, granted=5)
    for _ in range(5):
        assert share.has_room
        share.take()
    assert not share.has_room


def test_it_shrinks_back_to_the_running_jobs_and_the_spare() -> None:
    share = Share(limit=64, granted=20, running=2)
    assert share.trim() == 6
    assert share.granted == 6
    assert share.trim() is None  # already there


def test_it_is_not_trimmed_while_an_ask_is_in_flight() -> None:
    """The answer sets the share: a cut made meanwhile would be overwritten, or would cut the slot asked for."""
    share = Share(limit=64, granted=20, running=2, asking=1)
    assert share.trim() is None
    assert share.granted == 20
