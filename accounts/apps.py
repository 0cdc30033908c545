from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts.api_keys import api_keys_changed
        from accounts.models import ApiKey, Merchant

        # Any change to a key or its merchant, however made (a service, the admin, the
        # shell), makes every worker drop its cached keys (accounts.api_keys).
        for model in (ApiKey, Merchant):
            post_save.connect(api_keys_changed, sender=model, dispatch_uid=f"{model}-saved")
            post_delete.connect(api_keys_changed, sender=model, dispatch_uid=f"{model}-deleted")
