"""What the bench commands share: argument types, and running a bench to its report."""

from collections.abc import Callable

from django.core.management.base import CommandError, OutputWrapper

from bench.api import BenchError


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def env_pair(value: str) -> tuple[str, str]:
    """NAME=VALUE, for a variable of the server's environment."""
    name, sep, setting = value.partition("=")
    if not sep or not name:
        raise ValueError(value)
    return name, setting


def bench_report(
    *, name: str, run: Callable[[], list[str]], stderr: OutputWrapper, interrupted: str
) -> None:
    """Run a bench that returns its violations; list them on stderr and fail the command
    (exit code 1) when there are any. `interrupted` says what Ctrl-C left behind."""
    try:
        violations = run()
    except BenchError as error:
        raise CommandError(str(error)) from error
    except KeyboardInterrupt:
        stderr.write(f"{name}: interrupted; {interrupted}")
        raise SystemExit(130) from None
    if violations:
        for line in violations:
            stderr.write(f"  {line}")
        raise CommandError(f"{name}: {len(violations)} violations (listed above)")
