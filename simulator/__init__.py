"""The provider simulator: Stripe's and an Adyen-like wire format over one rules engine, a
stand-in for the outside world that imports nothing of Moneta's apps (docs/providers.md).

- over HTTP: `python manage.py run_provider_simulator --port N` (simulator.server);
- in-process: `httpx.WSGITransport(app=simulator.inprocess_app(store_path=...))`.
"""

from simulator.app import InProcessApp, SimulatorApp, inprocess_app
from simulator.config import SimulatorConfig

__all__ = ["InProcessApp", "SimulatorApp", "SimulatorConfig", "inprocess_app"]
