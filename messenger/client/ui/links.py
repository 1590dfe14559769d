"""Links in message text: where they are, so that the chat draws them as links and opens
them on a click. No Qt here.

A link starts with ``http://``, ``https://`` or ``www.`` and runs to the next space;
punctuation that usually ends a sentence (``.,;:!?``, quotes, and a closing bracket that
opened before the link) is left out, as mail and chat programs do.
"""

from __future__ import annotations

import re

_LINK = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?"
_PAIRS = {")": "(", "]": "[", "}": "{"}


def find_links(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, url)`` of each link in ``text``; ``url`` is what to open (a
    ``www.`` link gets ``https://``)."""
    found = []
    for match in _LINK.finditer(text):
        start, end = match.span()
        while end > start:
            last = text[end - 1]
            if last in _TRAILING:
                end -= 1
            elif last in _PAIRS and text.count(_PAIRS[last], start, end) < \
                    text.count(last, start, end):
                end -= 1
            else:
                break
        link = text[start:end]
        if len(link) <= 4:
            continue
        url = link if "://" in link else "https://" + link
        found.append((start, end, url))
    return found
