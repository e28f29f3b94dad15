"""Project state in PostgreSQL or SQLite through SQLModel: schema, service, claims, change feed.

Import from the submodules (``state.service``, ``state.claims``, ``state.feed`` …); this package
file stays empty so light users such as event naming do not load the database stack.
"""
