"""What a call plays and where what it hears goes: media sources and sinks.

Sources are WebRTC tracks (aiortc's `MediaStreamTrack`): `Tone` (a sine wave),
`WavFile` (a file, looped or once), `Silence`, `Microphone` (the system's
default input, through `sounddevice` when it is installed) and `TestPattern`
(moving colour bars, for video). Sinks consume the other side's tracks:
`Capture` (keeps the last seconds of audio and measures which tones are in it),
`Recorder` (a WAV file), `Speaker` (`sounddevice`), `FrameCounter` (video frames)
and `Discard`.

Needs the calls extra: `pip install './client[calls]'`.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import math
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import av
from aiortc.contrib.media import MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

__all__ = [
    "RATE",
    "AudioSink",
    "Capture",
    "Discard",
    "FrameCounter",
    "Microphone",
    "Recorder",
    "Silence",
    "Speaker",
    "TestPattern",
    "Tone",
    "VideoSink",
    "WavFile",
    "tone_fraction",
]

RATE = 48_000  # Opus's clock: every source speaks it, every sink hears it
FRAME_S = 0.020
SAMPLES = int(RATE * FRAME_S)
_TIME_BASE = fractions.Fraction(1, RATE)


class _Paced(MediaStreamTrack):
    """A live audio source: one 20 ms frame of 48 kHz mono s16 every 20 ms."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._pts = 0

    def pcm(self, pts: int) -> bytes:
        raise NotImplementedError

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += SAMPLES
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(self.pcm(self._pts))
        frame.pts = self._pts
        frame.sample_rate = RATE
        frame.time_base = _TIME_BASE
        return frame


class Tone(_Paced):
    """A sine wave of `frequency` Hz (whole hertz, so one second repeats exactly)."""

    def __init__(self, frequency: int = 440, level: float = 0.5) -> None:
        super().__init__()
        if not 20 <= frequency <= RATE // 2 or not 0 < level <= 1:
            raise ValueError("a tone is 20 Hz to 24 kHz, at a level above 0 and at most 1")
        self.frequency = frequency
        peak = int(32767 * level)
        wave = array.array(
            "h", (int(peak * math.sin(2 * math.pi * frequency * n / RATE)) for n in range(RATE))
        )
        self._second = wave.tobytes() * 2  # a frame may run past the end of the second

    def pcm(self, pts: int) -> bytes:
        start = (pts % RATE) * 2
        return self._second[start : start + SAMPLES * 2]


class Silence(_Paced):
    def pcm(self, pts: int) -> bytes:
        return bytes(SAMPLES * 2)


def WavFile(path: str | Path, *, loop: bool = True) -> MediaStreamTrack:
    """A WAV (or any audio file FFmpeg reads) played into the call, looped by default."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no audio file {path}")
    player = MediaPlayer(str(path), loop=loop)
    if player.audio is None:
        raise ValueError(f"{path} has no audio")
    return player.audio


class AudioSink(Protocol):
    async def consume(self, track: MediaStreamTrack) -> None: ...

    async def close(self) -> None: ...


class VideoSink(Protocol):
    async def consume(self, track: MediaStreamTrack) -> None: ...

    async def close(self) -> None: ...


async def _drain(track: MediaStreamTrack, each: Any) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            each(await track.recv())


class Discard:
    """Reads and drops what the other side sends (WebRTC still counts it)."""

    def __init__(self) -> None:
        self.frames = 0

    async def consume(self, track: MediaStreamTrack) -> None:
        def count(_frame: Any) -> None:
            self.frames += 1

        await _drain(track, count)

    async def close(self) -> None:
        return None


class Capture:
    """Keeps the last `seconds` of the other side's audio (48 kHz mono s16) and says
    how much of it is a given tone (`tone_fraction`)."""

    def __init__(self, seconds: float = 5.0) -> None:
        self._frames: deque[bytes] = deque(maxlen=max(1, int(seconds / FRAME_S)))
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self.frames = 0
        self.received = asyncio.Event()
        self._samples = 0
        self._heard = asyncio.Condition()

    async def consume(self, track: MediaStreamTrack) -> None:
        async def keep() -> None:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                for mono in self._resampler.resample(frame):
                    self._frames.append(bytes(mono.planes[0])[: mono.samples * 2])
                    self._samples += mono.samples
                self.frames += 1
                self.received.set()
                async with self._heard:
                    self._heard.notify_all()

        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            await keep()

    async def wait_heard(self, seconds: float) -> None:
        """Wait until `seconds` of audio have come in all."""
        async with self._heard:
            await self._heard.wait_for(lambda: self._samples >= seconds * RATE)

    def samples(self, seconds: float | None = None) -> array.array[int]:
        pcm = array.array("h")
        pcm.frombytes(b"".join(self._frames))
        if seconds is not None:
            return pcm[-int(seconds * RATE) :]
        return pcm

    def tone_fraction(self, frequency: float, seconds: float = 1.0) -> float:
        """How much of the last `seconds`' energy is at `frequency` (0 to about 1)."""
        return tone_fraction(self.samples(seconds), frequency)

    async def close(self) -> None:
        return None


def tone_fraction(
    samples: array.array[int] | list[int], frequency: float, rate: int = RATE
) -> float:
    """The share of the signal's energy at `frequency`, by the Goertzel algorithm
    (one bin of a DFT): about 1 for a pure tone of that frequency, about 0 for
    silence or a tone elsewhere."""
    n = len(samples)
    if n == 0:
        return 0.0
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s_prev = s_prev2 = 0.0
    energy = 0.0
    for x in samples:
        s = x + coefficient * s_prev - s_prev2
        s_prev2, s_prev = s_prev, s
        energy += x * x
    power = s_prev2 * s_prev2 + s_prev * s_prev - coefficient * s_prev * s_prev2
    if energy == 0:
        return 0.0
    return min(1.0, power / (n * energy / 2))


class Recorder:
    """Writes what the other side says to a WAV file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._recorder = MediaRecorder(str(self.path), format="wav")
        self._started = False

    async def consume(self, track: MediaStreamTrack) -> None:
        self._recorder.addTrack(track)
        await self._recorder.start()
        self._started = True

    async def close(self) -> None:
        if self._started:
            await self._recorder.stop()
            self._started = False


class FrameCounter:
    """Counts the other side's video frames and keeps the last one's size."""

    def __init__(self) -> None:
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.received = asyncio.Event()

    async def consume(self, track: MediaStreamTrack) -> None:
        def count(frame: av.VideoFrame) -> None:
            self.frames += 1
            self.size = (frame.width, frame.height)
            self.received.set()

        await _drain(track, count)

    async def close(self) -> None:
        return None


class TestPattern(MediaStreamTrack):
    """Moving colour bars at `fps` frames a second (a stand-in camera)."""

    kind = "video"
    __test__ = False  # not a pytest class

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._start: float | None = None
        self._count = 0
        luma = bytes((x * 255 // max(1, width - 1)) for x in range(width))
        self._luma_row = luma * 2
        self._chroma = bytes(128 for _ in range((width // 2) * (height // 2)))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._count += 1
            wait = self._start + self._count / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        shift = (self._count * 4) % self.width
        row = self._luma_row[shift : shift + self.width]
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(_rows(row, frame.planes[0].line_size, self.height))
        chroma_row = bytes(128 for _ in range(frame.planes[1].line_size))
        frame.planes[1].update(chroma_row * (self.height // 2))
        frame.planes[2].update(chroma_row * (self.height // 2))
        frame.pts = self._count * (90_000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        return frame


def _rows(row: bytes, line_size: int, height: int) -> bytes:
    return (row + bytes(line_size - len(row))) * height


# --- the system's own microphone and speaker, where `sounddevice` is installed ----------


def _sounddevice() -> Any:
    try:
        import sounddevice  # type: ignore[import-not-found]
    except (ImportError, OSError) as exc:  # not installed, or no PortAudio library
        raise RuntimeError(
            "a microphone or speaker needs the `sounddevice` package and PortAudio:"
            " pip install sounddevice"
        ) from exc
    return sounddevice


class Microphone(_Paced):
    """The system's default input (or `device`), 48 kHz mono, through `sounddevice`."""

    def __init__(self, device: int | str | None = None) -> None:
        super().__init__()
        sd = _sounddevice()
        self._buffer: deque[bytes] = deque(maxlen=50)
        self._stream = sd.RawInputStream(
            samplerate=RATE,
            channels=1,
            dtype="int16",
            blocksize=SAMPLES,
            device=device,
            callback=lambda data, _frames, _time, _status: self._buffer.append(bytes(data)),
        )
        self._stream.start()

    def pcm(self, pts: int) -> bytes:
        chunk = self._buffer.popleft() if self._buffer else b""
        return chunk[: SAMPLES * 2].ljust(SAMPLES * 2, b"\0")

    def stop(self) -> None:
        super().stop()
        self._stream.stop()
        self._stream.close()


class Speaker:
    """Plays what the other side says on the system's default output (or `device`)."""

    def __init__(self, device: int | str | None = None) -> None:
        sd = _sounddevice()
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._stream = sd.RawOutputStream(samplerate=RATE, channels=1, dtype="int16", device=device)
        self._stream.start()

    async def consume(self, track: MediaStreamTrack) -> None:
        def play(frame: av.AudioFrame) -> None:
            for mono in self._resampler.resample(frame):
                self._stream.write(bytes(mono.planes[0])[: mono.samples * 2])

        await _drain(track, play)

    async def close(self) -> None:
        self._stream.stop()
        self._stream.close()
