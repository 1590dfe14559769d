"""Messenger: a self-hosted messenger (Twisted server, PyQt5 client, voice calls)."""

__version__ = "0.1.0"
