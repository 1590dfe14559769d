"""Speech in, speech out, and a score: PESQ-WB (ITU-T P.862.2) of a call's audio.

The reference is one of the two 8 s speech samples in ``data/`` (see its README). What
came out of the far end's loudspeaker is cut to the reference by cross-correlation (so
the call's setup time and delay do not count against it), then scored with the ``pesq``
package in wide-band mode. The same lag is the **mouth-to-ear delay** of the path
measured (capture, encode, network, jitter buffer, decode, playout).

numpy and pesq are test/benchmark dependencies only; the client does not need them.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

RATE = 16000


def numpy() -> Any:
    import numpy as np  # noqa: PLC0415 - benchmark/test dependency
    return np


def speech(name: str = "a") -> Any:
    """One reference sample as int16 numpy samples."""
    np = numpy()
    data = resources.files("messenger.bench").joinpath(f"data/speech_{name}.raw").read_bytes()
    return np.frombuffer(data, dtype="<i2").copy()


def padded(samples: Any, before: float, after: float) -> bytes:
    """``samples`` with silence around them, as the bytes a capture device gives."""
    np = numpy()
    lead = np.zeros(int(before * RATE), dtype="<i2")
    tail = np.zeros(int(after * RATE), dtype="<i2")
    return np.concatenate([lead, samples.astype("<i2"), tail]).tobytes()


def find_lag(reference: Any, signal: Any) -> int:
    """The offset in ``signal`` where ``reference`` starts (cross-correlation by FFT)."""
    np = numpy()
    ref = reference.astype(np.float64)
    sig = signal.astype(np.float64)
    if len(sig) < len(ref):
        sig = np.concatenate([sig, np.zeros(len(ref) - len(sig))])
    size = 1 << int(np.ceil(np.log2(len(sig) + len(ref))))
    spectrum = np.fft.rfft(sig, size) * np.conj(np.fft.rfft(ref, size))
    correlation = np.fft.irfft(spectrum, size)[:len(sig) - len(ref) + 1]
    return int(np.argmax(correlation))


def score(reference: Any, played: bytes | Any) -> tuple[float, int]:
    """(PESQ-WB, lag in samples) of what was played against the reference."""
    np = numpy()
    from pesq import pesq  # noqa: PLC0415 - benchmark/test dependency
    signal = (np.frombuffer(played, dtype="<i2") if isinstance(played, bytes | bytearray)
              else played)
    lag = find_lag(reference, signal)
    cut = signal[lag:lag + len(reference)]
    if len(cut) < len(reference):
        cut = np.concatenate([cut, np.zeros(len(reference) - len(cut), dtype=cut.dtype)])
    value = pesq(RATE, reference.astype(np.float64), cut.astype(np.float64), "wb")
    return float(value), lag
