"""The retry schedule: Standard Webhooks' table lengthened to about three days, each delay
jittered within its bounds, and nothing after the last."""

from pytest_django.fixtures import Settings

from webhooks.delivery import retry_delay


def test_the_default_schedule_spans_about_three_days(settings: Settings) -> None:
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_SECONDS
    assert schedule[:6] == [5, 300, 1800, 7200, 18000, 36000]
    assert 2.8 <= sum(schedule) / 86400 <= 3.5
    assert len(schedule) + 1 == 13  # attempts in all


def test_each_delay_is_jittered_within_its_bounds_and_the_schedule_ends(
    settings: Settings,
) -> None:
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [10.0, 100.0]
    settings.WEBHOOK_RETRY_JITTER = 0.2
    firsts = [retry_delay(1) for _ in range(200)]
    assert all(delay is not None and 8.0 <= delay <= 12.0 for delay in firsts)
    assert len(set(firsts)) > 100  # jittered, not one fixed delay
    second = retry_delay(2)
    assert second is not None and 80.0 <= second <= 120.0
    assert retry_delay(3) is None
