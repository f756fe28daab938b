from hub.core.ratelimit import LoginLimiter


def test_limits_after_max_failures_and_releases_after_the_window() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60)

    for second in range(3):
        assert limiter.retry_after("user:rosa", now=second) == 0
        limiter.failed("user:rosa", now=second)

    assert limiter.retry_after("user:rosa", now=10) == 50
    assert limiter.retry_after("user:bob", now=10) == 0
    assert limiter.retry_after("user:rosa", now=61) == 0  # the first failure left the window


def test_success_clears_the_username_only() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=60)
    limiter.failed("user:rosa", "addr:1.2.3.4", now=0)
    limiter.failed("user:rosa", "addr:1.2.3.4", now=1)

    limiter.succeeded("user:rosa")

    assert limiter.retry_after("user:rosa", now=2) == 0
    assert limiter.retry_after("addr:1.2.3.4", now=2) > 0
