"""The server's logging: throttled repeats, JSON or text output, bounded rotated files.

- `throttle`: `ThrottledLogger`, one line per interval (with a count) for events that an
  attacker can repeat at will (refused connections, replayed ids, dropped mails).
- `output`: the log observer twistd uses for the server: text or one JSON object per
  line, to standard output or to a file rotated by size with a fixed number of old files.
"""
