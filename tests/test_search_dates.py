"""A date a question names picks out the turns stamped then, as people tell of a day."""

from __future__ import annotations

from datetime import datetime

from optical_memory.memory import OpticalMemory


def test_a_month_without_a_year_finds_the_turn_stamped_that_month(store_location: str) -> None:
    with OpticalMemory(store_location) as memory:
        memory.add("user", "We went camping by the lake.", timestamp=datetime(2022, 3, 2, 10))
        memory.add("user", "We went camping by the lake.", timestamp=datetime(2023, 5, 20, 10))
        memory.add("user", "We went camping by the lake.", timestamp=datetime(2023, 8, 20, 10))
        assert memory.search("Where did we go camping in May?")[0].number == 2
        assert memory.search("Where did we go camping?")[0].number == 1  # the older of equals


def test_a_day_is_found_in_the_turns_of_the_two_days_after_it(store_location: str) -> None:
    # Told on 3 June about the night before: a question about 2 June finds it; one about
    # 30 May (four days before) does not favour it over the older equal turn.
    with OpticalMemory(store_location) as memory:
        memory.add("user", "I watched a film last night.", timestamp=datetime(2023, 5, 1, 9))
        memory.add("user", "I watched a film last night.", timestamp=datetime(2023, 6, 3, 9))
        assert memory.search("What film did I watch on 2 June 2023?")[0].number == 2
        assert memory.search("What film did I watch on 30 May 2023?")[0].number == 1
