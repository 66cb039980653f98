"""The UAE chart of accounts both ledger sandboxes hold (AED): the same codes and names in Xero and in
Zoho Books, so a company's account mapping reads alike in either ledger and the contract tests can
compare what the two hold by code. Each sandbox adds its vendor's account types and fields."""

from __future__ import annotations

#: (code, name), in code order.
UAE_ACCOUNTS: tuple[tuple[str, str], ...] = (
    ("1010", "Emirates NBD Current Account"),
    ("1020", "Emirates NBD USD Account"),
    ("1200", "Accounts Receivable"),
    ("1215", "Mamo clearing"),
    ("1216", "Payment gateway clearing (old)"),  # inactive (Xero: archived)
    ("1400", "Prepayments"),
    ("1600", "Office equipment"),
    ("2100", "Accounts Payable"),
    ("2200", "VAT"),
    ("2300", "Accrued liabilities"),
    ("3000", "Share capital"),
    ("3200", "Retained earnings"),
    ("4000", "Sales"),
    ("4010", "Refunds"),
    ("4900", "Other income"),
    ("5000", "Cost of goods sold"),
    ("6110", "Merchant fees"),
    ("6120", "Bank charges"),
    ("6200", "Rent"),
    ("6300", "Salaries"),
    ("7100", "Foreign exchange gains and losses"),
)


def uae_chart(details: dict[str, tuple]) -> tuple[tuple, ...]:
    """``(code, name, *details[code])`` for every account of the chart; ``details`` must cover each code."""
    missing = [code for code, _ in UAE_ACCOUNTS if code not in details]
    if missing or len(details) != len(UAE_ACCOUNTS):
        raise ValueError(f"details must name exactly the chart's codes (missing {missing})")
    return tuple((code, name, *details[code]) for code, name in UAE_ACCOUNTS)
