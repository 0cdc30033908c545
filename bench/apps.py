from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Benchmarks: commands that print figures (docs/benchmarks.md). No models."""

    name = "bench"
