"""One lifecycle for background work: ``start(on_failure)``, ``stop()``, and a failure it reports;
a Supervisor runs a service's components and stops them all on a signal or the first failure."""
import logging
import threading
from collections.abc import Callable, Sequence

from runtime.signals import StopSignal

log = logging.getLogger(__name__)


class Fatal(Exception):
    """A failure no retry can fix: the component that meets it stops and reports it."""


class Component:
    """Background work that starts, stops, and may ``fail`` for good (a reason no retry can fix)."""

    name = "component"

    def __init__(self) -> None:
        self.failure: str | Exception | None = None
        self._on_failure: Callable[[Component], None] | None = None

    def start(self, on_failure: Callable[["Component"], None] | None = None) -> None:
        """Begin the work; ``on_failure(self)`` is called if it fails, even before it started."""
        self._on_failure = on_failure
        if self.failure and on_failure:
            on_failure(self)

    def stop(self) -> None:
        """End the work and wait for it; safe to call more than once, or without a start."""

    def fail(self, reason: str | Exception) -> None:
        """Stop for good because of ``reason`` and report it."""
        self.failure = reason
        if self._on_failure:
            self._on_failure(self)


class Loop(Component):
    """A component whose ``run`` goes on in ``threads`` threads of its own until ``stopping`` is set."""

    def __init__(self, name: str, threads: int = 1, daemon: bool = False) -> None:
        super().__init__()
        self.name, self.threads, self.daemon = name, threads, daemon
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, on_failure: Callable[[Component], None] | None = None) -> None:
        super().start(on_failure)
        names = [self.name] if self.threads == 1 else [f"{self.name}-{n}" for n in range(self.threads)]
        self._threads = [threading.Thread(target=self.run, name=name, daemon=self.daemon) for name in names]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join()

    def fail(self, reason: str | Exception) -> None:
        self.stopping.set()
        super().fail(reason)

    def wake(self) -> None:
        """Cut short whatever the loop waits for, so that it sees ``stopping``."""

    def run(self) -> None:
        raise NotImplementedError


class Supervisor:
    """Starts ``components`` in order and, on SIGTERM, Ctrl-C or the first failure, stops them in reverse.

    Exits with status 1, the failure logged, when a component failed.
    """

    def __init__(self, components: Sequence[Component]) -> None:
        self.components = components
        self.failed: list[Component] = []

    def run(self) -> None:
        stop_signal = StopSignal()

        def on_failure(component: Component) -> None:
            self.failed.append(component)
            stop_signal.set()

        started: list[Component] = []
        try:
            for component in self.components:
                if self.failed:
                    break  # no use starting the rest
                component.start(on_failure)
                started.append(component)
            stop_signal.wait()
        finally:
            for component in reversed(started):
                component.stop()
        for component in self.failed:
            log.error("%s", component.failure)
        if self.failed:
            raise SystemExit(1)
