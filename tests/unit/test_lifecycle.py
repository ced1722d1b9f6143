"""One lifecycle: components start in order and stop in reverse, on a signal or the first failure."""
import os
import signal

import pytest

from runtime.lifecycle import Component, Loop, Supervisor


@pytest.fixture(autouse=True)
def signal_handlers():
    """Put back the handlers a Supervisor's StopSignal replaces."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    signal.set_wakeup_fd(-1)


class Recorder(Component):
    def __init__(self, name, events, fails=None):
        super().__init__()
        self.name, self.events, self.fails = name, events, fails

    def start(self, on_failure=None):
        super().start(on_failure)
        self.events.append(f"start {self.name}")
        if self.fails:
            self.fail(self.fails)

    def stop(self):
        self.events.append(f"stop {self.name}")


class Signaller(Loop):
    """Sends this process SIGTERM from a thread of its own, as an operator would."""

    def run(self):
        os.kill(os.getpid(), signal.SIGTERM)
        self.stopping.wait()


def test_a_signal_stops_every_component_in_reverse():
    events = []
    Supervisor([Recorder("a", events), Recorder("b", events), Signaller("signaller")]).run()
    assert events == ["start a", "start b", "stop b", "stop a"]


def test_the_first_failure_stops_what_started_and_exits_1(caplog):
    events = []
    with pytest.raises(SystemExit) as exit_:
        Supervisor([Recorder("a", events), Recorder("b", events, fails="the disk is on fire"),
                    Recorder("c", events)]).run()
    assert exit_.value.code == 1
    assert events == ["start a", "start b", "stop b", "stop a"]  # c never started
    assert "the disk is on fire" in caplog.text


def test_a_loop_runs_in_its_threads_until_stopped():
    class Counter(Loop):
        rounds = 0

        def run(self):
            while not self.stopping.wait(0.01):
                self.rounds += 1

    counter = Counter("counter", threads=2)
    counter.stop()  # before a start: nothing to wait for
    counter.start()
    assert [thread.name for thread in counter._threads] == ["counter-0", "counter-1"]
    counter.stop()
    assert not any(thread.is_alive() for thread in counter._threads)
