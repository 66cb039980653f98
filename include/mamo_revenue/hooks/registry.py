"""Ledger platforms the product can post to, by name: the one place a new ledger is registered."""

from __future__ import annotations

from importlib import import_module

#: platform → "module:class" of its ``LedgerHook``.
LEDGER_HOOKS = {
    "xero": "mamo_revenue.hooks.xero:XeroHook",
    "zoho_books": "mamo_revenue.hooks.zoho_books:ZohoBooksHook",
}


def ledger_hook_class(platform: str):
    try:
        module, name = LEDGER_HOOKS[platform].split(":")
    except KeyError:
        raise ValueError(f"unknown ledger platform {platform!r}; known: {', '.join(sorted(LEDGER_HOOKS))}") from None
    return getattr(import_module(module), name)
