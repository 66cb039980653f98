"""One exception class per rule, under one base, so callers and alerts can tell a bad mapping
from a locked period from an outage.

Every error carries ``guidance``: one sentence a finance user can act on. Messages name the
company, the period and the record; they never contain a secret.
"""

from __future__ import annotations


class MamoRevenueError(Exception):
    """Base of every error the product raises on purpose."""

    guidance: str = "Contact the data team with the run's log."

    def __init__(self, message: str, *, guidance: str | None = None):
        super().__init__(message)
        if guidance is not None:
            self.guidance = guidance

    def __str__(self) -> str:
        return f"{self.args[0]} (what to do: {self.guidance})"

    def with_guidance(self, guidance: str) -> MamoRevenueError:
        """The same error with more specific guidance (returns ``self``, for ``raise … .with_guidance()``)."""
        self.guidance = guidance
        return self


# --- Mamo data -------------------------------------------------------------------------------------


class ChargeDataError(MamoRevenueError):
    """A Mamo charge has a field the posting policy cannot read."""

    guidance = "Check the charge in the Mamo dashboard and ask Mamo support to correct it; then re-run the period."

    def __init__(self, charge_id: str, field: str, problem: str, *, company: str = "?", period: str = "?"):
        self.charge_id, self.field, self.problem = charge_id, field, problem
        self.company, self.period = company, period
        super().__init__(
            f"company {company}, period {period}: charge {charge_id}, field {field!r}: {problem}"
        )

    def in_context(self, *, company: str, period: str) -> ChargeDataError:
        """The same error, labelled with the company and period of the run that met it."""
        return type(self)(self.charge_id, self.field, self.problem, company=company, period=period)


class ChargeDateError(ChargeDataError):
    """``created_date`` does not parse, so the charge cannot be placed in any period."""


class CurrencyPolicyError(MamoRevenueError):
    """A charge's currency cannot be converted to the ledger's base currency by the policy."""

    guidance = (
        "Mamo settles in AED; the ledger's base currency must match the settlement currency. "
        "Check the company's base currency setting."
    )


class MamoApiError(MamoRevenueError):
    """The Mamo API answered with an error that retrying does not fix."""

    guidance = "Check the Mamo API connection (base URL and key)."


class MamoAuthError(MamoApiError):
    guidance = "The Mamo API key was refused (HTTP 403): paste a current key from the Mamo dashboard's developer page into the company's Mamo connection."


class MamoUnavailable(MamoApiError):
    """Timeouts, 5xx and 429 that outlasted the hook's retries."""

    guidance = "Mamo did not answer after several retries; the task will retry. If it keeps failing, check Mamo's status."


# --- Journal validation ----------------------------------------------------------------------------


class JournalValidationError(MamoRevenueError):
    """The journal broke one or more posting rules; ``problems`` lists every one of them."""

    guidance = "Fix every problem listed, then re-run the period."

    def __init__(self, company: str, period: str, problems: list):
        self.company, self.period, self.problems = company, period, list(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"company {company}, period {period}: journal not posted: {lines}")


# --- Ledgers ----------------------------------------------------------------------------------------


class LedgerError(MamoRevenueError):
    """Base of every error a ledger hook raises."""

    guidance = "Check the ledger connection."


class LedgerAuthError(LedgerError):
    """The grant is expired or revoked (``invalid_grant``, a second 401, a 403): a person must reconnect."""

    guidance = "Reconnect the ledger: the saved authorisation was refused."


class LedgerRateLimited(LedgerError):
    """The ledger's rate limit is exhausted; ``retry_after`` is in seconds when the ledger said."""

    guidance = "The ledger's API limit was reached; the task retries after the limit resets."

    def __init__(self, message: str, *, retry_after: float | None = None, problem: str | None = None):
        self.retry_after, self.problem = retry_after, problem
        super().__init__(message)


class LedgerUnavailable(LedgerError):
    """Timeouts and 5xx that outlasted the hook's retries."""

    guidance = "The ledger did not answer after several retries; the task will retry."


class LedgerValidationError(LedgerError):
    """The ledger refused the journal (or accepted it with warnings) for a reason of its own."""

    guidance = "Read the ledger's message, correct the mapping or the ledger, then re-run the period."


class LedgerAccountError(LedgerValidationError):
    """A mapped account is unknown, archived, deleted or inactive in the ledger."""

    guidance = "Map the category to an active account in the ledger, then re-run the period."


class LedgerLockedPeriod(LedgerValidationError):
    """The period is on or before the ledger's lock date."""

    guidance = "Ask the ledger's adviser to move the lock date, or re-sync into an open period."


class LedgerCurrencyError(LedgerValidationError):
    guidance = "The ledger's base currency differs from the company's; correct the company's base currency or connect the right organisation."


class LedgerConflict(LedgerError):
    """The ledger already holds a journal for this reference in a state we cannot reuse (voided, draft)."""

    guidance = "A journal with this reference exists in the ledger but is not posted; review it in the ledger before re-syncing."


class PeriodBusy(MamoRevenueError):
    """Another run holds the posting claim for this company and period."""

    guidance = "Another run is posting this period; this task retries and will find the result."
