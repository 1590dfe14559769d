"""The store: SQL behind adbapi pools, one module of queries per table group.

Every function named ``*_txn`` runs inside a pool thread with an open transaction and is
called through `messenger.store.db.Database.read` or ``.write``. Nothing here knows about
connections, sessions or the wire.
"""
