"""A stall is never silent (review item 0): lag without progress past the threshold is reported."""

from __future__ import annotations

from app.observe.stalls import StallWatch

TP = ("crm.public.opportunity", 2)


def test_lag_without_progress_past_the_threshold_is_stuck_until_the_offset_moves():
    watch = StallWatch(after_s=60)
    assert watch.observe(0, {TP: (100, 190)}) == []
    assert watch.observe(59, {TP: (100, 190)}) == []
    assert watch.observe(61, {TP: (100, 190)}) == ["crm.public.opportunity/2: lag 90, no progress for 61 s"]
    assert watch.observe(70, {TP: (150, 190)}) == []  # it moved
    assert watch.observe(200, {TP: (190, 190)}) == []  # caught up: no lag, nothing waits


def test_an_idle_partition_without_lag_is_never_stuck_and_a_retry_tier_gets_its_delay_on_top():
    watch = StallWatch(after_s=60, grace_s={"sync.retry.10m": 600})
    tier = ("sync.retry.10m", 0)
    for now in (0, 100, 500):
        assert watch.observe(now, {TP: (100, 100), tier: (5, 9)}) == []
    assert watch.observe(661, {TP: (100, 100), tier: (5, 9)}) == ["sync.retry.10m/0: lag 4, no progress for 661 s"]


def test_a_partition_that_leaves_and_comes_back_starts_afresh():
    watch = StallWatch(after_s=60)
    watch.observe(0, {TP: (100, 190)})
    watch.observe(30, {})
    assert watch.observe(100, {TP: (100, 190)}) == []
