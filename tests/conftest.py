import pytest
from django.conf import settings


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        raise pytest.UsageError(
            f"the test suite runs on PostgreSQL only (DATABASE_URL gives {engine}); "
            "run it with bin/test, which starts one"
        )
