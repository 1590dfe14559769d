"""Every option of ``twistd messenger``: name, short name, default, help and type.

The table `tap.Options` is built from (and that ``--help``, the INI file and the checks
in `tap.Options.postOptions` read). Kept apart so the options read as one list.
"""

from __future__ import annotations

from typing import Any

from messenger.server.logs import output as log_output
from messenger.wire.suites import SUITES

MIB = 1024 * 1024

# -- operations: metrics, logs, mail queue (issue 16) -------------------------------------

OPS_PARAMETERS: list[list[Any]] = [
    ["metrics-port", None, 0, "Serve Prometheus /metrics and /health on this port"
                              " (0: off).", int],
    ["metrics-interface", None, "127.0.0.1", "Address of the metrics listener (keep it"
                                             " private: metrics name no one, but tell a"
                                             " lot)."],
    ["log-format", None, "text", "Log lines as 'text' or 'json' (one object per line)."],
    ["log-max-bytes", None, log_output.DEFAULT_MAX_BYTES, "Rotate a --logfile at this"
                                                          " size, in bytes.", int],
    ["log-max-files", None, log_output.DEFAULT_MAX_FILES, "Rotated log files kept; the"
                                                          " oldest is deleted.", int],
    ["mail-queue-max", None, 1000, "Mails waiting for delivery at most; past it a new"
                                   " mail is dropped (a security mail first pushes out a"
                                   " welcome mail).", int],
]


FLAGS: list[list[Any]] = [
    ["auto-register", None, "Create an account when an unknown name logs in with a"
                            " password (classic JIM behaviour)."],
    ["no-persist", None, "Benchmarks only: do not store messages (no offline delivery,"
                         " no history)."],
    ["smtp-starttls", None, "Require STARTTLS with the SMTP relay."],
]

PARAMETERS: list[list[Any]] = [
    ["config", "c", None, "INI file with a [messenger] section of these options."],
    ["port", "p", 7777, "TCP port for clients (0: any free port; the log says which).",
     int],
    ["interface", None, "", "Address to listen on (default: all)."],
    ["data-dir", "d", "var", "Directory for the database, keys, secret and mail."],
    ["secret-file", None, None, "Shared-secret file (default: DATA_DIR/secret); created"
                                " with a random secret, mode 0600, when absent."],
    ["max-frame", None, 128 * 1024, "Largest frame accepted after login, in bytes"
                                    " (16 KiB before login).", int],
    ["max-queued-bytes", None, 4 * MIB, "Bytes queued for a client that does not read"
                                        " before it is dropped.", int],
    ["cipher", None, ",".join(SUITES), "Cipher suites offered, in order of preference"
                                       " (aes-256-gcm, rsa-oaep)."],
    ["rsa-bits", None, 3072, "Size of the server's RSA key when one is generated"
                             " (2048, 3072 or 4096).", int],
    ["max-body", None, 16 * 1024, "Largest message or broadcast body, in bytes.", int],
    ["handshake-timeout", None, 10.0, "Seconds allowed for each handshake phase.", float],
    ["login-timeout", None, 60.0, "Seconds allowed between handshake and login.", float],
    ["probe-interval", None, 30.0, "Seconds of silence before the server probes.", float],
    ["probe-timeout", None, 15.0, "Seconds to answer a probe before being dropped.",
     float],
    ["token-days", None, 30.0, "Lifetime of a resume token, in days.", float],
    ["scrypt-n", None, 2**15, "scrypt cost parameter N for password hashes.", int],
    ["udp-port", None, None, "UDP port of the call relay (default: the TCP port).", int],
    ["relay-tcp-port", None, None, "TCP port of the call relay for networks that block"
                                   " UDP (default: the UDP port + 1; -1: off).", int],
    ["public-host", None, "", "Host name or address clients use to reach the relay."],
    ["ring-timeout", None, 45.0, "Seconds an unanswered call rings.", float],
    ["database", None, "", "SQLite file (default: DATA_DIR/messenger.sqlite) or"
                           " postgresql://USER:PASSWORD@HOST:PORT/DATABASE."],
    ["db-readers", None, 2, "Reader connections to the database.", int],
    ["redis", None, "", "Cluster mode: redis://[:PASSWORD@]HOST:PORT/DB of the Redis"
                        " the nodes share (with a postgresql:// --database)."],
    ["node-name", None, "", "Cluster mode: this node's name, unique in the cluster"
                            " (default: host name and port)."],
    ["relay-address", None, "", "HOST:PORT clients reach this node's UDP call relay at"
                                " (default: --public-host or the client connection's"
                                " address, and --udp-port)."],
    ["db-writers", None, 2, "Writer connections to PostgreSQL (SQLite has one).", int],
    ["db-sync", None, "full", "SQLite durability: 'full' (every commit reaches the disk"
                              " before the sender's acknowledgement) or 'normal'"
                              " (survives a crash of the server, not of the machine)."],
    ["commit-window", None, 2.0, "Milliseconds a message arriving at an idle writer waits"
                                 " for others to share its transaction (0: none).",
     float],
    ["tls-port", None, 0, "Also listen with TLS on this port (0: no TLS).", int],
    ["tls-cert", None, "", "PEM certificate for the TLS listener."],
    ["tls-key", None, "", "PEM private key for the TLS listener."],
    ["smtp-host", None, "", "SMTP relay host (empty: deliver into DATA_DIR/Maildir)."],
    ["smtp-port", None, 25, "SMTP relay port.", int],
    ["smtp-user", None, "", "SMTP login name."],
    ["smtp-password-file", None, "", "File holding the SMTP password (kept out of ps)."],
    ["smtp-ca-file", None, "", "PEM CA file to verify the relay's STARTTLS certificate"
                               " (default: the system trust store)."],
    ["smtp-timeout", None, 60.0, "Seconds to connect to the relay / wait for a reply.",
     float],
    ["mail-give-up-days", None, 5.0, "Days of temporary failures before a mail is moved"
                                     " to the failed folder (0: never).", float],
    ["server-name", None, "Messenger", "How the e-mails name this server."],
    ["mail-from", None, "messenger@localhost", "From address of e-mails."],
    ["new-location-prefix", None, 32, "IPv4 prefix length that counts as the same"
                                      " location (32: exact address).", int],
    ["connections-per-minute", None, 60, "New connections per host (an IPv4 address, an"
                                         " IPv6 /64).", int],
    ["connections-per-minute-network", None, 240, "New connections per network (IPv4"
                                                  " /24, IPv6 /48).", int],
    ["max-connections-per-host", None, 256, "Open connections per host.", int],
    ["max-connections-per-network", None, 1024, "Open connections per network.", int],
    ["max-connections", None, 0, "Open connections in total (0: the open-file limit"
                                 " minus a reserve).", int],
    ["logins-per-minute", None, 20, "Login attempts per host.", int],
    ["logins-per-minute-network", None, 60, "Login attempts per network.", int],
    ["bad-requests-per-second", None, 0.5, "Bad requests a connection may keep sending"
                                           " (after a burst of 30) before it is"
                                           " closed.", float],
    ["crypto-ops-per-second", None, 100.0, "rsa-oaep: RSA private-key operations per"
                                           " connection and second.", float],
    ["hash-queue", None, 32, "Password checks of existing accounts that may wait (and"
                             " as many new hashes: registrations).", int],
    ["decoy-queue", None, 4, "Password checks of unknown names that may wait.", int],
    ["db-queue", None, 256, "Database reads (and writes) that may wait before 503.",
     int],
    ["max-contacts", None, 5000, "Contacts per user.", int],
    ["max-group-members", None, 1000, "Members per group (0: no limit).", int],
    ["max-groups-per-user", None, 500, "Groups a user may be a member of (0: no limit).",
     int],
    ["max-group-name", None, 64, "Characters in a group's name (1..256).", int],
    ["max-group-topic", None, 1024, "Characters in a group's topic (0..4096).", int],
    ["stored-mib-per-day", None, 64.0, "MiB of messages a user may store a day (0:"
                                       " no quota).", float],
    ["retention-days", None, 0.0, "Delete messages older than this many days (0: keep"
                                  " them).", float],
    ["edit-window", None, 48.0, "Hours an author may edit or delete a message for"
                                " everyone (0: no limit).", float],
    ["requests-per-second", None, 50.0, "Sustained requests per connection.", float],
    ["request-burst", None, 200, "Burst of requests per connection.", int],
    ["files-dir", None, "", "Directory of the files users send (default:"
                            " DATA_DIR/files; with PostgreSQL, one directory every node"
                            " mounts)."],
    ["file-quota-mib", None, 1024.0, "MiB a user's files and unfinished uploads may"
                                     " hold (0: no quota).", float],
    ["max-file-mib", None, 100.0, "Largest file a user may send, in MiB.", float],
    ["upload-expiry-hours", None, 24.0, "An unfinished upload untouched this long is"
                                        " deleted.", float],
    ["unposted-file-hours", None, 24.0, "A sent file that no message refers to is"
                                        " deleted after this long.", float],
    ["file-io-threads", None, 2, "Threads reading and writing file bytes.", int],
    ["lockout-failures", None, 5, "Failed logins that lock an account ...", int],
    ["lockout-window", None, 15.0, "... within this many minutes ...", float],
    ["lockout-duration", None, 15.0, "... for this many minutes.", float],
] + OPS_PARAMETERS
