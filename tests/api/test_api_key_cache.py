"""Each worker keeps the API keys it has read in memory, checked on every request against a
generation in Redis that any change to a key or merchant replaces (ADR 0008): the cache
saves a database round trip per request. A key revoked by a process that reaches Redis is
refused by every worker that reaches it, but for a gap of about one Redis round trip: a
worker that read the key between the first replacement and the commit may serve it from
the commit until the second replacement lands. A revocation that never reaches Redis is
refused by a worker that had cached the key at most 60 s after it read it."""

from collections.abc import Callable

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

import accounts.api_keys
from accounts.api_keys import API_KEYS_GENERATION, api_key_create, api_key_revoke
from accounts.models import ApiKey, Merchant
from tests.api.helpers import ApiClient, assert_error
from tests.api.test_operations import redis_down


def _reads_the_key(request: Callable[[], object]) -> bool:
    """Whether the request read its API key from the database."""
    with CaptureQueriesContext(connection) as captured:
        request()
    return any(ApiKey._meta.db_table in query["sql"] for query in captured.captured_queries)


def _generation() -> object:
    cache = caches["default"]
    return cache._cache.get_client().get(cache.make_and_validate_key(API_KEYS_GENERATION))  # type: ignore[attr-defined]


def test_a_key_is_read_once_then_served_from_memory(api: ApiClient) -> None:
    assert _reads_the_key(lambda: api.get("customers"))
    assert not _reads_the_key(lambda: api.get("customers"))
    assert not _reads_the_key(lambda: api.get("customers"))


def test_a_key_revoked_by_another_process_is_refused_at_once(api: ApiClient) -> None:
    assert api.api_key is not None
    api.get("customers")  # cached here
    # Another process revokes it: the row changes and, once committed, the generation.
    ApiKey.objects.filter(pk=api.api_key.pk).update(revoked=True)
    caches["default"]._cache.get_client().set(  # type: ignore[attr-defined]
        caches["default"].make_and_validate_key(API_KEYS_GENERATION), b"elsewhere"
    )

    assert_error(api.get("customers"), 401, "authentication_error")


def test_a_revocation_replaces_the_generation_before_and_after_commit(
    api_key: tuple[ApiKey, str], django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    before = _generation()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # type: ignore[attr-defined]
        api_key_revoke(api_key=api_key[0])
        during = _generation()

    assert during != before
    assert len(callbacks) == 1
    callbacks[0]()
    assert _generation() not in (before, during)


def test_changing_a_merchant_replaces_the_generation(merchant: Merchant) -> None:
    before = _generation()
    merchant.name = "Renamed"
    merchant.save()
    assert _generation() != before


def test_creating_keys_and_merchants_leaves_the_generation(merchant: Merchant) -> None:
    api_key_create(merchant=merchant)  # sets one if Redis had none
    before = _generation()
    api_key_create(merchant=merchant)
    Merchant.objects.create(name="New")
    assert _generation() == before


def test_any_change_empties_the_cache_of_every_key(api: ApiClient, merchant: Merchant) -> None:
    other_key, other_secret = api_key_create(merchant=merchant)
    other = ApiClient(other_secret, api_key=other_key)
    api.get("customers")
    other.get("customers")

    api_key_revoke(api_key=other_key)

    assert _reads_the_key(lambda: api.get("customers"))
    assert_error(other.get("customers"), 401, "authentication_error")


def test_an_old_entry_is_read_again(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    api.get("customers")
    monkeypatch.setattr(accounts.api_keys, "_CACHE_MAX_AGE", 0.0)
    assert _reads_the_key(lambda: api.get("customers"))


def test_without_redis_every_request_reads_the_key(api: ApiClient) -> None:
    with redis_down():
        assert _reads_the_key(lambda: api.get("customers"))
        assert _reads_the_key(lambda: api.get("customers"))
        assert api.api_key is not None
        api_key_revoke(api_key=api.api_key)  # the generation cannot be replaced
        assert_error(api.get("customers"), 401, "authentication_error")


def test_when_redis_stops_answering_the_cache_is_dropped(api: ApiClient) -> None:
    api.get("customers")  # cached under the working Redis
    assert api.api_key is not None
    ApiKey.objects.filter(pk=api.api_key.pk).update(revoked=True)  # unannounced

    with redis_down():
        assert_error(api.get("customers"), 401, "authentication_error")


def test_a_new_key_finding_redis_down_also_drops_the_cache(
    api: ApiClient, merchant: Merchant
) -> None:
    other_key, other_secret = api_key_create(merchant=merchant)
    api.get("customers")  # cached under the working Redis

    with redis_down():
        # Not cached: the generation it reads first, on the miss path, does not come.
        assert ApiClient(other_secret, api_key=other_key).get("customers").status_code == 200

    assert _reads_the_key(lambda: api.get("customers"))
