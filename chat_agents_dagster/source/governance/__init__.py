"""The governance tables: alias history and version changes, derived from the loaded tables.

Kept apart from the load's modules, so that the loaded tables' code versions (versions.py) do not
move when this code does; its own version is `governance_code_version()`.
"""
