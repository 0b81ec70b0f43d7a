"""The test sources and the tone measure the call tests rely on."""

from __future__ import annotations

import array
import random

import pytest

from parley.calling.audio import RATE, SAMPLES, Silence, Tone, tone_fraction


async def second_of(track: Tone | Silence) -> array.array[int]:
    pcm = array.array("h")
    for _ in range(RATE // SAMPLES):
        frame = await track.recv()
        assert (frame.sample_rate, frame.samples) == (RATE, SAMPLES)
        pcm.frombytes(bytes(frame.planes[0])[: frame.samples * 2])
    return pcm


@pytest.mark.asyncio
async def test_a_tone_is_found_at_its_frequency_and_nowhere_else() -> None:
    pcm = await second_of(Tone(440))
    assert tone_fraction(pcm, 440) > 0.99
    assert tone_fraction(pcm, 660) < 0.01
    assert tone_fraction(pcm, 450) < 0.01


@pytest.mark.asyncio
async def test_silence_and_noise_hold_no_tone() -> None:
    assert tone_fraction(await second_of(Silence()), 440) == 0.0
    noise = array.array("h", (random.randint(-8000, 8000) for _ in range(RATE)))
    assert tone_fraction(noise, 440) < 0.01
    assert tone_fraction([], 440) == 0.0


def test_a_tone_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="20 Hz"):
        Tone(10)
    with pytest.raises(ValueError, match="level"):
        Tone(440, level=2)
