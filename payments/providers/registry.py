"""Which adapter serves a provider, and where a new payment goes.

`adapter_get(name)` gives the process's adapter (one per provider, made on first use, so
that its HTTP connections are kept alive between calls). `provider_route(preferred=…)`
picks the provider for a new payment: the merchant's default, or the other provider when
the default's circuit is open (SPEC §3, Providers).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from payments.providers.base import ProviderAdapter
from payments.providers.circuit import circuit_allows_call, circuit_breakers_forget

PROVIDERS = ("stripe", "adyen")

_adapters: dict[str, ProviderAdapter] = {}
_lock = threading.Lock()


def adapter_get(name: str) -> ProviderAdapter:
    """The adapter of provider `name` (one of PROVIDERS), shared by the process."""
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r}: one of {', '.join(PROVIDERS)}")
    with _lock:
        adapter = _adapters.get(name)
        if adapter is None:
            adapter = _adapters[name] = _adapter_make(name)
        return adapter


def _adapter_make(name: str) -> ProviderAdapter:
    if name == "stripe":
        from payments.providers.stripe import StripeAdapter

        return StripeAdapter()
    from payments.providers.adyen import AdyenAdapter

    return AdyenAdapter()


def adapters_reset() -> None:
    """Forget the adapters and breakers made from the settings (their connections closed):
    the next call makes them again from the settings of now."""
    with _lock:
        for adapter in _adapters.values():
            adapter.close()
        _adapters.clear()
        circuit_breakers_forget()


def _forget_after_fork() -> None:
    # A forked child (a prefork worker) makes its own adapters: the parent's connections
    # are the parent's, dropped here, not closed, so that the parent keeps them.
    global _lock
    _lock = threading.Lock()
    _adapters.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    """Tests that change a provider setting get adapters made from it."""
    if setting.startswith(("PROVIDER_", "STRIPE_", "ADYEN_")) or setting == "REDIS_URL":
        adapters_reset()


def provider_route(*, preferred: str = "") -> tuple[str, str]:
    """The provider a new payment or payout goes to, and why: `preferred` (a merchant's
    `default_provider`; blank for PAYMENT_DEFAULT_PROVIDER) unless its circuit is open
    and another provider's is not ("failover: stripe circuit open"). When every circuit
    is open, `preferred` all the same: its call waits for the circuit."""
    preferred = preferred or settings.PAYMENT_DEFAULT_PROVIDER
    if preferred not in PROVIDERS:
        raise ValueError(f"unknown provider {preferred!r}: one of {', '.join(PROVIDERS)}")
    if circuit_allows_call(preferred):
        return preferred, "default"
    for other in PROVIDERS:
        if other != preferred and circuit_allows_call(other):
            return other, f"failover: {preferred} circuit open"
    return preferred, "default: every provider's circuit is open"
