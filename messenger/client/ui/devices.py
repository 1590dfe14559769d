"""The sound devices a user can choose for calls, for the settings dialog. No Qt here.

The seam to the call engine: its device-listing API (`messenger.client.calls.audio`
``input_devices()`` / ``output_devices()``, each a list of records with ``name``) is
used when it is there; without it (or without pyaudio) the list is empty and calls use
the system's default devices. Listing opens PortAudio, which can take a moment and
prints to stderr: call `list_devices` through a thread.
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
    from messenger.client.calls import audio
    inputs = getattr(audio, "input_devices", None)
    outputs = getattr(audio, "output_devices", None)
    if inputs is None or outputs is None:
        return DeviceLists(problem="This version of the call engine cannot list sound"
                                   " devices: calls use the system's default devices.")
    try:
        return DeviceLists([d.name for d in inputs()], [d.name for d in outputs()])
    except Exception as error:           # pyaudio missing, no sound system at all
        return DeviceLists(problem=f"No sound devices could be listed ({error}): calls"
                                   " use the system's default devices, if any.")
