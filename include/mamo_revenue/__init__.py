"""Mamo revenue accounting: a period's Mamo charges become one balanced journal in the merchant's ledger."""

__version__ = "0.1.0"
