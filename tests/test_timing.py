"""The one round-robin block timer (btseg.timing): order, what is timed, when it stops."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.errors import ConfigError
from btseg.timing import for_rounds, round_robin, until


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.sampled_from("abcde"), min_size=1, max_size=4, unique=True),
       block=st.integers(2, 5), rounds=st.integers(1, 4))
def test_blocks_round_robin_and_the_first_call_of_each_is_untimed(keys, block, rounds):
    seen: list[str] = []
    results: list[tuple[str, int]] = []
    calls = {k: (lambda k=k: (seen.append(k), len(seen))[1]) for k in keys}
    t = round_robin(calls, block, for_rounds(rounds), lambda k, r: results.append((k, r)))
    assert seen == [k for _ in range(rounds) for k in keys for _ in range(block)]
    assert t.rounds == rounds
    assert all(len(t.ms[k]) == rounds * (block - 1) and len(t.block_medians[k]) == rounds for k in keys)
    # on_result sees exactly the timed calls: every call but the first of each block
    timed = [(k, i + 1) for i, k in enumerate(seen) if i % block]
    assert results == timed
    assert set(t.median()) == set(keys)


def test_until_stops_on_calls_time_or_the_round_cap():
    t = round_robin({"a": lambda: None, "b": lambda: None}, 3, until(min_calls=7))
    assert t.rounds == 4 and len(t.ms["a"]) == 8  # 2 timed per round: 4 rounds reach 7
    t = round_robin({"a": lambda: None}, 2, until(min_rounds=3, max_rounds=5, seconds=0.0))
    assert t.rounds == 3
    t = round_robin({"a": lambda: None}, 2, until(min_rounds=1, max_rounds=5, seconds=3600))
    assert t.rounds == 5


def test_a_block_of_one_is_refused():
    with pytest.raises(ConfigError, match="block 1: expected >= 2"):
        round_robin({"a": lambda: None}, 1, for_rounds(1))
