"""The simulator's settings. Passed in by whoever builds it (the management command, the
in-process factory): the simulator reads no Django setting, it stands for the outside world.
The defaults are the ones Moneta's settings use for the demo and the tests."""

from dataclasses import dataclass

DEFAULT_STRIPE_API_KEY = "sk_test_moneta"
# whsec_ + base64 of the 32 bytes b"moneta-simulator-webhook-secret!"
DEFAULT_STRIPE_WEBHOOK_SECRET = "whsec_bW9uZXRhLXNpbXVsYXRvci13ZWJob29rLXNlY3JldCE="  # noqa: S105
DEFAULT_ADYEN_API_KEY = "adyen_test_moneta"
# 64 hex characters: the 32 bytes b"Moneta-simulator-Adyen-HMAC-key!"
DEFAULT_ADYEN_HMAC_KEY = "4d6f6e6574612d73696d756c61746f722d416479656e2d484d41432d6b657921"
DEFAULT_ADYEN_MERCHANT_ACCOUNT = "MonetaTest"
DEFAULT_STORE = ".cache/provider_simulator.sqlite3"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulator needs to know: its credentials, where it keeps its state, how long
    asynchronous outcomes take, and where it sends webhooks (empty: it sends none)."""

    store_path: str = DEFAULT_STORE
    stripe_api_key: str = DEFAULT_STRIPE_API_KEY
    stripe_webhook_secret: str = DEFAULT_STRIPE_WEBHOOK_SECRET
    adyen_api_key: str = DEFAULT_ADYEN_API_KEY
    adyen_hmac_key: str = DEFAULT_ADYEN_HMAC_KEY
    adyen_merchant_account: str = DEFAULT_ADYEN_MERCHANT_ACCOUNT
    async_seconds: float = 2.0  # pm_card_async, refunds and payouts settle this long after
    timeout_seconds: float = 30.0  # how long pm_card_timeout holds its answer over HTTP
    webhook_url: str = ""  # base URL; webhooks go to {webhook_url}/webhooks/providers/{name}/

    def __post_init__(self) -> None:
        bytes.fromhex(self.adyen_hmac_key)  # ValueError now rather than at the first webhook
        if self.async_seconds < 0 or self.timeout_seconds < 0:
            raise ValueError("async_seconds and timeout_seconds must not be negative")
