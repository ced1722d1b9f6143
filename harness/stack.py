"""The one stack launcher, for the tests, the benchmarks and the fault suites: the services as child
processes in a namespace of their own, ready when their own signals say so (never their log text)."""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from harness.broker import delete_namespace
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MODULES = {"catalog": "catalog_worker", "order": "order_worker", "frontend": "frontend"}


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    return free_ports(1)[0]


def free_ports(count):
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago.

    They lie below the kernel's ephemeral range (where bind(0) and outgoing connections take
    theirs), so a service killed and started again finds its port still free: a port from that
    range had been taken meanwhile by some connection's local end, now and then.
    """
    try:
        first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:
        first_ephemeral = 32768  # Linux's default
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(10000, max(first_ephemeral, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


class Stack:
    """``with Stack(settings) as stack:`` runs the catalog worker, the order worker and the frontend.

    Without ``settings`` the stack makes its own: a fresh namespace and data directory (unless ``env``
    sets BAZAAR_NAMESPACE or DATA_DIR), deleted when it ends. With ``replicas`` > 1 the order workers
    are ``order-0``, ``order-1``…, each with its own ``REPLICA_ID``, data directory
    ``<data_dir>/order-<i>`` and ``replica_env``; likewise ``catalog_replicas`` > 1 makes ``catalog-0``…
    in ``<data_dir>/catalog-<i>``. One order worker keeps its files in ``<data_dir>``, one catalog
    in ``<data_dir>/catalog``.
    ``modules`` replaces a service's ``python -m`` module (e.g. the HTTP floor for the frontend).
    Every worker serves its metrics on a port of its own (``metrics_urls``): a worker is ready once
    they show it consuming, the frontend once ``/readyz`` (or, without its workers, ``/healthz``)
    answers 200. Leaving the block stops whatever still runs. ``launch(name, argv, env)``
    may change how a service starts (on a host of its own, say): it returns ``(argv, env)``.
    """

    def __init__(self, settings=None, env=None, services=tuple(MODULES), modules=None, replicas=1,
                 replica_env=None, log_dir=None, port=None, ready_timeout=30, launch=None, catalog_replicas=1):
        self.launch = launch or (lambda name, argv, env: (argv, env))
        env = dict(env or {})
        self._scratch = None
        if settings is None:
            self._scratch = tempfile.mkdtemp(prefix="bazaar-stack-")
            settings = Settings.from_env({**os.environ, "BAZAAR_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
                                          "DATA_DIR": self._scratch, "LOG_LEVEL": "WARNING", **env})
            self._owns_namespace = "BAZAAR_NAMESPACE" not in env
        else:
            self._owns_namespace = False
        self.settings, self.ready_timeout = settings, ready_timeout
        self.log_dir = Path(log_dir or settings.data_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Never the frontend's port.
        ports = [p for p in free_ports(2 + len(services) + replicas + catalog_replicas) if p != port]
        self.port = port or ports.pop()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "AMQP_URL": settings.amqp_url, "BAZAAR_NAMESPACE": settings.namespace,
                    "DATA_DIR": str(settings.data_dir), "FRONTEND_HOST": "127.0.0.1",
                    "FRONTEND_PORT": str(self.port), "RPC_TIMEOUT": str(settings.rpc_timeout),
                    "QUEUE_TYPE": settings.queue_type, "LOG_LEVEL": settings.log_level, **env}
        modules = {**MODULES, **(modules or {})}
        self.services = {}  # name -> (module, its own environment)
        for service in services:
            if service == "order" and replicas > 1:
                self.services.update({f"order-{i}": (modules["order"], {
                    "REPLICA_ID": str(i), "DATA_DIR": str(self.replica_dir(f"order-{i}")), **(replica_env or {})})
                    for i in range(replicas)})
            elif service == "catalog":
                self.services.update({name: (modules["catalog"], {
                    "REPLICA_ID": str(i), "DATA_DIR": str(self.replica_dir(name))})
                    for i, name in enumerate([f"catalog-{i}" for i in range(catalog_replicas)]
                                             if catalog_replicas > 1 else ["catalog"])})
            else:
                self.services[service] = (modules[service], {})
        workers = [name for name in self.services if name != "frontend"]
        self.metrics_ports = dict(zip(workers, ports, strict=False))
        self.metrics_urls = {name: f"http://127.0.0.1:{p}/metrics" for name, p in self.metrics_ports.items()}
        self.processes = {}  # name -> Popen

    def __enter__(self):
        """Start every service; leaving the block stops whatever still runs."""
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_):
        # A stack of its own (a benchmark's) stops cleanly; a test's is killed, as the test has
        # checked its files already and a clean stop would cost it up to a second (waitress's loop).
        sig = signal.SIGTERM if self._scratch else signal.SIGKILL
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)  # a test may have frozen it
            process.send_signal(sig)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = {}
        if self._owns_namespace:
            delete_namespace(self.settings)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def start(self, *names):
        """Start services (all by default) and wait until they are ready."""
        for name in names or self.services:
            module, env = self.services[name]
            metrics_port = str(self.metrics_ports.get(name, 0))
            argv, env = self.launch(name, [sys.executable, "-m", module],
                                    {**self.env, **env, "METRICS_PORT": metrics_port})
            with open(self.log_dir / f"{name}.log", "ab") as log:
                self.processes[name] = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready(names or self.services)

    def stop(self, *names, sig=signal.SIGTERM):
        """Signal services (all running by default) and wait for them; return their exit codes."""
        names = names or tuple(self.processes)
        for name in names:
            self.processes[name].send_signal(sig)
        return {name: self.processes.pop(name).wait(timeout=15) for name in names}

    def kill(self, *names):
        return self.stop(*names, sig=signal.SIGKILL)

    def replica_dir(self, name):
        """The data directory of an order worker replica, or of a catalog replica."""
        return self.settings.data_dir / name

    @property
    def replicas(self):
        """The order worker replicas running now."""
        return [name for name in self.processes if name.startswith("order")]

    @property
    def catalogs(self):
        """The catalog replicas running now."""
        return [name for name in self.processes if name.startswith("catalog")]

    def leader(self, timeout=10):
        """The order worker replica that leads now, as its metrics say."""
        leaders: list[str] = []

        def look():
            leaders[:] = [name for name in self.replicas if self.metric(name, "bazaar_order_leading") == 1]
            return leaders

        wait_until(look, timeout, f"no leader among {self.replicas}")
        return leaders[0]

    def wait_ready(self, names, timeout=None):
        try:
            wait_until(lambda: all(self._ready(name) for name in names), timeout or self.ready_timeout,
                       f"{list(names)} not ready")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}:\n{self.logs()}") from None

    def logs(self):
        """The end of every service's log, for error messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.log_dir.glob("*.log")))

    def _ready(self, name):
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited:\n{self.logs()}")
        if name in self.metrics_urls:  # consuming its service's queue
            return (self.metric(name, "bazaar_consumers", {"name": name.partition("-")[0]}) or 0) > 0
        # With every worker of the stack running, the frontend answers /readyz only once they answer pings.
        workers_run = self.metrics_urls and all(worker in self.processes for worker in self.metrics_urls)
        return _get(f"{self.url}/readyz" if workers_run else f"{self.url}/healthz") == 200

    def metric(self, name, metric, labels=None):
        """The value of a worker's sample of ``metric`` with ``labels``, or None."""
        try:
            with urllib.request.urlopen(self.metrics_urls[name], timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == metric and sample.labels == (labels or {}):
                    return sample.value
        return None


def wait_until(condition, timeout, what):
    """Poll ``condition`` every 50 ms until it holds; fail saying ``what`` did not happen in ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)


def _get(url):
    """The status of a GET, or None without an answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
