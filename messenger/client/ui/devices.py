"""The sound devices a user can choose for calls, for the settings dialog. No Qt here.

The names come from the call engine's device list (`CallEngine.list_devices`, what
PortAudio sees); the choice is handed to the `CallController` (`set_devices`), which
uses it for every call from then on, and kept in the desktop settings for the next run.
The call window offers the same choice during a call (for that session). Listing opens
PortAudio, which can take a moment: call `list_devices` through a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeviceLists:
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    problem: str = ""                 # why nothing could be listed, for people


def list_devices() -> DeviceLists:
    """The names of the microphones and loudspeakers (blocking)."""
    from messenger.client.calls.engine import CallEngine
    try:
        inputs, outputs = CallEngine.list_devices()
    except Exception as error:           # a sound system that fails in its own way
        return DeviceLists(problem=f"No sound devices could be listed ({error}): calls"
                                   " use the system's default devices, if any.")
    if not inputs and not outputs:
        return DeviceLists(problem="No sound devices were found (or sound support is not"
                                   " installed): calls use the system's defaults, if any.")
    return DeviceLists([d.name for d in inputs], [d.name for d in outputs])
