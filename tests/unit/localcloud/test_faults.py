"""The fault setting and the injector's draws: read from text, checked, reproducible, counted."""

from __future__ import annotations

import pytest

from infra.localcloud.faults import KILL_CALLS, FaultInjector, Faults, FaultSpecError


def test_the_setting_reads_the_documented_text() -> None:
    # Given the text MIDSTAGE_FAULTS takes
    text = "kill=0.05,aws_error=0.02,throttle=0.02,duplicate=0.05,schedule_twice=0.1,seed=7"

    # When it is read
    faults = Faults.parse(text)

    # Then every rate and the seed are set, and it describes itself the same way
    assert faults == Faults(kill=0.05, aws_error=0.02, throttle=0.02, duplicate=0.05, schedule_twice=0.1, seed=7)
    assert faults.enabled
    assert Faults.parse(faults.describe()) == faults


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("kil=0.1", "expected one of"),
        ("kill", "expected one of"),
        ("kill=lots", "is not a number"),
        ("kill=1.5", "from 0 to 1"),
        ("aws_error=0.6,throttle=0.6", "cannot exceed 1"),
        ("seed=1.5", "is not a number"),
    ],
)
def test_a_setting_that_cannot_be_read_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError, match=complaint):
        Faults.parse(text)


def test_the_environment_variable_is_off_when_unset_or_empty() -> None:
    assert Faults.from_environment({}) is None
    assert Faults.from_environment({"MIDSTAGE_FAULTS": " "}) is None
    assert Faults.from_environment({"MIDSTAGE_FAULTS": "duplicate=0.5"}) == Faults(duplicate=0.5)


def test_an_injector_without_rates_injects_nothing() -> None:
    injector = FaultInjector(None)

    assert not injector.enabled
    assert injector.kill_point("Fn", "{}") is None
    assert injector.aws_fault("Fn", {}, "/", b"") is None
    assert not injector.duplicate("Fn", "m-1", "1")
    assert not injector.schedule_twice("Sweep", "2030-01-01T00:00:00Z")
    assert injector.total() == 0


def _decisions(injector: FaultInjector) -> list[object]:
    decisions: list[object] = []
    for n in range(300):
        decisions.append(injector.kill_point("Fn", f'{{"n": {n}}}'))
        decisions.append(injector.duplicate("Fn", f"m-{n}", "1"))
        decisions.append(injector.schedule_twice("Sweep", f"t{n}"))
        fault = injector.aws_fault("Fn", {"X-Amz-Target": "DynamoDB_20120810.PutItem"}, "/", str(n).encode())
        decisions.append(None if fault is None else fault[0])
    return decisions


def test_the_same_seed_and_inputs_meet_the_same_faults_and_another_seed_others() -> None:
    faults = Faults(kill=0.2, aws_error=0.1, throttle=0.1, duplicate=0.2, schedule_twice=0.2, seed=7)

    first, second = FaultInjector(faults), FaultInjector(faults)
    other = FaultInjector(Faults(**{**faults.to_json(), "seed": 8}))

    assert _decisions(first) == _decisions(second)
    assert first.counts() == second.counts()
    assert _decisions(other) != _decisions(FaultInjector(faults))


def test_faults_come_at_about_their_rate_and_each_one_is_counted_where_it_happened() -> None:
    injector = FaultInjector(Faults(kill=0.1, duplicate=0.3, seed=1))

    kills = [injector.kill_point("Fn", f"event {n}") for n in range(4000)]
    duplicates = [injector.duplicate("Queue", f"m-{n}", "1") for n in range(4000)]

    killed = [point for point in kills if point is not None]
    assert 300 < len(killed) < 500
    assert set(killed) == set(KILL_CALLS)  # every kill point in the range comes up
    assert 1050 < sum(duplicates) < 1350
    assert injector.counts()["kill"] == {"Fn": len(killed)}
    assert injector.counts()["duplicate"] == {"Queue": sum(duplicates)}


def test_a_retry_of_the_same_thing_is_a_new_draw() -> None:
    # Given an injector that kills half the invocations
    injector = FaultInjector(Faults(kill=0.5, seed=3))

    # When the same event is invoked again and again
    outcomes = {injector.kill_point("Fn", '{"same": true}') is None for _ in range(50)}

    # Then it is not doomed to the same fate every time
    assert outcomes == {True, False}
