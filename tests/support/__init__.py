"""What the tests and the benchmarks share: in-memory fakes of the ports and a thread race.
One copy of each, so a fake cannot drift from its store in one place and not another."""
