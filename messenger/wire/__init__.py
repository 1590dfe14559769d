"""The wire layer: bytes <-> JIM dicts.

Framing, the HMAC challenge, the RSA key exchange, the two cipher suites and the JIM
codec with its validation. Nothing here knows about users, storage or connections;
the server and the client core both build on it.
"""
