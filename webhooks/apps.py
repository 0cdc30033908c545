from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from audit.services import events_committed
        from webhooks import tasks  # noqa: F401 - registered in every process: sent by name
        from webhooks.relay import relay_soon

        # After every commit that wrote events, the relay runs at once (docs/webhooks.md).
        events_committed.connect(relay_soon, dispatch_uid="webhooks-relay-soon")
