"""Local stand-ins for Mamo and the ledgers: real HTTP servers written from the vendors' contracts.

They share nothing with the hooks: they are the other side of the wire.
"""
