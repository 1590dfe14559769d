"""``python -m messenger.client.cli``: the same as ``messenger-cli``."""

from messenger.client.cli import main

main()
