"""How the deploy benchmark reads the machine's CPU load from /proc/stat."""

from bench.deploy import busy_share, cpu_times

# user nice system idle iowait irq softirq steal guest guest_nice
STAT = "cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 50 0 25 400 25 0 0 0 15 0\n"


def test_idle_and_iowait_are_not_busy_and_guest_time_is_not_counted_twice() -> None:
    assert cpu_times(STAT) == (150, 1000)


def test_busy_share_is_over_the_interval_not_since_boot() -> None:
    later = "cpu  190 0 60 800 50 0 0 0 30 0\n"
    assert busy_share(cpu_times(STAT), cpu_times(later)) == 1.0
    assert busy_share(cpu_times(STAT), cpu_times(STAT)) == 0.0


def test_a_reading_of_this_machine_is_consistent() -> None:
    busy, total = cpu_times()
    assert 0 <= busy <= total
