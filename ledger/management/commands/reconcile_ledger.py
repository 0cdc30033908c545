"""`manage.py reconcile_ledger`: check the ledger's invariants, record the run, report it.

Exit code 0 when everything holds, 1 when anything breaks (SPEC §4.4); the checks live in
`ledger.reconciliation`.
"""

import json
import sys
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from tqdm import tqdm

from accounts.models import Account
from audit.management import AuditedCommand
from ledger.models import ReconciliationRun
from ledger.reconciliation import reconcile_ledger, reconcile_scope_size


def parse_since(value: str) -> datetime:
    """YYYY-MM-DD (midnight UTC) or an ISO 8601 datetime; a naive one is taken as UTC."""
    try:
        # Python 3.11+ reads both a bare date and a full ISO 8601 datetime (with `Z`).
        since = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--since must be a date (YYYY-MM-DD) or an ISO 8601 datetime "
            f"(e.g. 2025-01-31T09:30:00Z), not {value!r}"
        ) from None
    return since.replace(tzinfo=UTC) if timezone.is_naive(since) else since


class Command(AuditedCommand):
    help = (
        "Check the ledger invariants (I1 balanced transactions, I2 balances and every "
        "entry's balance_after match the entries, I4 wallets within limits and holds now and "
        "at every entry, I5 currencies sum to zero, provider clearing and FX position bounds, "
        "I3 the database refuses changes), record a reconciliation run and report it. "
        "Exit code 0 when everything holds, 1 when anything breaks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--account", metavar="ID", help="check only this account (acct_…) and its transactions"
        )
        parser.add_argument(
            "--since",
            metavar="DATE",
            help="check only ledger transactions created at or after this date "
            "(YYYY-MM-DD or ISO 8601, UTC when no offset is given)",
        )
        parser.add_argument(
            "--format", choices=["text", "json"], default="text", help="report format"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = None
        if options["account"]:
            account = Account.objects.filter(public_id=options["account"].strip()).first()
            if account is None:
                raise CommandError(f"no account with id {options['account']!r}")
        since = parse_since(options["since"]) if options["since"] else None
        as_json = options["format"] == "json"

        # The bar goes to the real stderr (Django's wrapper would end each redraw with a
        # newline); disable=None hides it when stderr is not a terminal.
        with tqdm(
            total=reconcile_scope_size(account=account, since=since),
            desc="Reconciling",
            unit=" rows",
            file=sys.stderr,
            disable=True if as_json else None,
        ) as bar:
            run = reconcile_ledger(account=account, since=since, progress=bar.update)

        if as_json:
            self.stdout.write(json.dumps(_run_document(run), cls=DjangoJSONEncoder, indent=2))
        else:
            self._write_text(run)
        if run.status != ReconciliationRun.Status.OK:
            sys.exit(1)

    def _write_text(self, run: ReconciliationRun) -> None:
        parameters = run.parameters
        scope = ", ".join(
            f"{name} {parameters[name]}" for name in ("account", "since") if parameters.get(name)
        )
        self.stdout.write(f"Reconciliation run #{run.pk}" + (f" ({scope})" if scope else ""))
        checked = run.checked
        tables = checked["append_only_tables"]
        self.stdout.write(
            f"Checked {_count(checked['transactions'], 'ledger transaction')} (I1), "
            f"{_count(checked['accounts'], 'account')} (I2, I4), "
            f"{_count(checked['currencies'], 'currency', 'currencies')} (I5), "
            f"{_count(checked['clearing_accounts'], 'provider clearing account')}, "
            f"{_count(checked['fx_accounts'], 'FX account')}, "
            + (
                f"the database's guards on {_count(tables, 'table')} (I3, by trying changes)."
                if tables is not None
                else "the database's guards skipped (not PostgreSQL)."
            )
        )
        if run.status == ReconciliationRun.Status.OK:
            self.stdout.write(self.style.SUCCESS("All invariants hold."))
            return
        found = checked["breaks_found"]
        self.stdout.write(self.style.ERROR(f"{_count(found, 'break')} found:"))
        for item in run.breaks:
            # Every message names its account, transaction, currency or table.
            self.stdout.write(f"  {item['check']:<18} {item['message']}")
        if found > len(run.breaks):
            self.stdout.write(f"  … and {found - len(run.breaks)} more not recorded.")


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def _run_document(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "parameters": run.parameters,
        "checked": run.checked,
        "breaks": run.breaks,
    }
