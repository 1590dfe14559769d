"""Audio without a sound card: a standalone ALSA config, and signal helpers.

`AlsaFiles` writes an ALSA config whose default device captures from a raw file and plays
into another (the ``asym`` + ``file`` + ``null`` plugins built into libasound2, as in
MACHINE-NOTES) and gives the environment (``ALSA_CONFIG_PATH``) for a child process.
The variable must be set before PortAudio initialises and pyaudio keeps one PortAudio
per process, so each party of an audio test runs in its own process
(`tests.support.call_party`).

Signals are 16 kHz mono signed 16-bit little-endian, held in ``array("h")``; only the
standard library is used (no numpy in the venv).
"""

from __future__ import annotations

import math
import os
import sys
from array import array
from operator import mul
from pathlib import Path

RATE = 16000

CONFIG = """\
pcm.!default {{ type asym; playback.pcm "fileout"; capture.pcm "filein" }}
pcm.fileout {{ type file; slave.pcm {{ type null }}; file "{playback}"; format "raw" }}
pcm.filein {{ type file; slave.pcm {{ type null }}; file "/dev/null"; infile "{capture}"; \
format "raw" }}
"""


class AlsaFiles:
    """One party's sound card: capture.raw in, playback.raw out, asound.conf."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capture = self.directory / "capture.raw"
        self.playback = self.directory / "playback.raw"
        self.config = self.directory / "asound.conf"
        self.config.write_text(CONFIG.format(playback=self.playback, capture=self.capture))
        self.playback.write_bytes(b"")

    def set_capture(self, samples: array) -> None:
        """What the microphone will hear (make it longer than what is read)."""
        self.capture.write_bytes(to_bytes(samples))

    def played(self) -> array:
        """What was played so far."""
        return from_bytes(self.playback.read_bytes())

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for a child process that should use this card."""
        env = dict(os.environ if base is None else base)
        env["ALSA_CONFIG_PATH"] = str(self.config)
        return env


# -- signals -----------------------------------------------------------------------------

def silence(seconds: float, rate: int = RATE) -> array:
    return array("h", bytes(2 * int(seconds * rate)))


def tone(seconds: float, frequency: float = 440.0, amplitude: float = 0.4,
         rate: int = RATE) -> array:
    scale = amplitude * 32767
    step = 2 * math.pi * frequency / rate
    return array("h", (int(scale * math.sin(step * i)) for i in range(int(seconds * rate))))


def chirp(seconds: float, start: float = 300.0, end: float = 3400.0, amplitude: float = 0.4,
          rate: int = RATE) -> array:
    """A linear sweep from ``start`` to ``end`` Hz: unlike a tone, it aligns unambiguously."""
    count = int(seconds * rate)
    slope = (end - start) / seconds
    scale = amplitude * 32767
    return array("h", (int(scale * math.sin(2 * math.pi * (start * t + 0.5 * slope * t * t)))
                       for t in (i / rate for i in range(count))))


def to_bytes(samples: array) -> bytes:
    if sys.byteorder == "little":
        return samples.tobytes()
    swapped = array("h", samples)
    swapped.byteswap()
    return swapped.tobytes()


def from_bytes(data: bytes) -> array:
    samples = array("h", data[:len(data) // 2 * 2])
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def correlation(a: array | list[int], b: array | list[int]) -> float:
    """Normalised cross-correlation at lag 0 of two equally long signals (-1..1)."""
    energy = sum(map(mul, a, a)) * sum(map(mul, b, b))
    if not energy:
        return 0.0
    return sum(map(mul, a, b)) / math.sqrt(energy)


def _envelope(samples: array, block: int) -> list[float]:
    return [sum(map(abs, samples[i:i + block])) / block
            for i in range(0, len(samples) - block + 1, block)]


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    mean_a, mean_b = sum(a) / n, sum(b) / n
    da = [x - mean_a for x in a]
    db = [x - mean_b for x in b]
    energy = sum(map(mul, da, da)) * sum(map(mul, db, db))
    return sum(map(mul, da, db)) / math.sqrt(energy) if energy else 0.0


def align(reference: array, signal: array, block: int = 160,
          fine_span: int = 3, probe: int = 4000) -> tuple[int, float]:
    """The lag at which ``reference`` best matches ``signal``, and the correlation there.

    Coarse: the amplitude envelopes (``block``-sample means of |x|) are matched at every
    block lag (so the reference should have silence around its sound). Fine: every
    sample lag within ``fine_span`` blocks of the coarse answer, on ``probe`` samples from
    the loudest part of the reference; then a few samples either side on the whole
    reference. The returned correlation is over the whole reference at the chosen lag
    (0.0 if the signal is too short to hold it).
    """
    if len(signal) < len(reference):
        return 0, 0.0
    ref_env = _envelope(reference, block)
    sig_env = _envelope(signal, block)
    best_block, best = 0, -2.0
    for start in range(len(sig_env) - len(ref_env) + 1):
        score = _pearson(ref_env, sig_env[start:start + len(ref_env)])
        if score > best:
            best_block, best = start, score
    loudest = max(range(len(ref_env)), key=ref_env.__getitem__)
    offset = max(0, min(len(reference) - probe, loudest * block - probe // 2))
    part = reference[offset:offset + probe]
    low = max(0, (best_block - fine_span) * block)
    high = min(len(signal) - len(reference), (best_block + fine_span) * block)
    best_lag, best = low, -2.0
    for lag in range(low, high + 1):
        score = correlation(part, signal[lag + offset:lag + offset + len(part)])
        if score > best:
            best_lag, best = lag, score
    # the probe can be a sample off (codec phase): settle the lag on the whole reference
    candidates = range(max(0, best_lag - 3), min(len(signal) - len(reference), best_lag + 3) + 1)
    scored = [(correlation(reference, signal[lag:lag + len(reference)]), lag)
              for lag in candidates]
    score, lag = max(scored)
    return lag, score
