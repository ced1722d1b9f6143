"""Start and stop a native stack (catalog worker, order worker, frontend) in a namespace of its own."""
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

import pika
from pika.exceptions import AMQPConnectionError

from broker.connection import parameters
from broker.settings import Settings
from catalog_worker.service import SERVICE as CATALOG
from order_worker.replication import STREAM
from order_worker.service import SERVICE as ORDER

ROOT = Path(__file__).resolve().parent.parent
STACK_MODULES = ("catalog_worker", "order_worker", "frontend")


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
    ports = []
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


def leading_replica(logs, timeout=10):
    """The replica (a key of ``logs``: name -> log file) whose log says it leads since it last started.

    Only the order queue's single active consumer numbers trades, and it logs ``leading:`` (at INFO)
    when it starts to; each start logs ``serving ``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, path in logs.items():
            if "leading:" in path.read_text(errors="replace").rsplit("serving ", 1)[-1]:
                return name
        time.sleep(0.05)
    raise TimeoutError(f"no leader among {sorted(logs)}")


class NativeStack:
    """``with NativeStack({"LOG_LEVEL": "DEBUG"}) as url:`` runs the services as child processes.

    Each stack gets a fresh queue namespace, data directory and port (unless ``env_overrides`` sets
    them), so it never touches another stack on the same broker. On exit the processes get SIGTERM and
    the queues of a namespace made up here are deleted. ``modules`` are the ``python -m`` modules to
    run; the stack is ready when ``GET /stocks/GameStart`` answers 200. ``replicas`` order workers
    run, each with its own ``REPLICA_ID``, data directory and ``replica_env`` on top of the rest;
    ``leader`` and ``restart`` read their logs, so they need ``replica_env={"LOG_LEVEL": "INFO"}``.
    With ``metrics``, each worker serves its Prometheus metrics on a port of its own
    (``metrics_urls``, by process name; the frontend's are on ``/metrics`` anyway). ``launch(name,
    argv, env)`` may change how a process starts (on a host of its own, say): it returns ``(argv, env)``.
    """

    def __init__(self, env_overrides=None, modules=STACK_MODULES, ready_timeout=30, replicas=1, replica_env=None,
                 metrics=False, launch=None):
        self.env_overrides = dict(env_overrides or {})
        self.modules, self.replicas, self.replica_env = modules, replicas, dict(replica_env or {})
        self.ready_timeout, self.metrics = ready_timeout, metrics
        self.launch = launch or (lambda name, argv, env: (argv, env))
        self.processes = {}  # name -> Popen
        self.metrics_urls = {}  # name -> URL of its metrics

    def __enter__(self):
        self.data_dir = tempfile.mkdtemp(prefix="bazaar-stack-")
        port = free_port()
        self.env = {**os.environ, "BAZAAR_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
                    "DATA_DIR": self.data_dir, "FRONTEND_HOST": "127.0.0.1", "FRONTEND_PORT": str(port),
                    "LOG_LEVEL": "WARNING", **self.env_overrides}
        self.url = f"http://127.0.0.1:{self.env['FRONTEND_PORT']}"
        for module in self.modules:
            for replica in range(self.replicas if module == "order_worker" else 1):
                self._start(module, replica)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.url

    def _start(self, module, replica):
        env, name = self.env, module
        if module == "order_worker" and self.replicas > 1:
            name = self.replica_name(replica)
            env = {**env, "REPLICA_ID": str(replica), "DATA_DIR": str(self.replica_dir(name)), **self.replica_env}
        if self.metrics and module != "frontend":
            taken = {int(self.env["FRONTEND_PORT"])} | {int(url.split(":")[2].split("/")[0])
                                                         for url in self.metrics_urls.values()}
            port = next(p for p in free_ports(len(taken) + 1) if p not in taken)
            env = {**env, "METRICS_PORT": str(port)}
            self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
        argv, env = self.launch(name, [sys.executable, "-m", module], env)
        with open(Path(self.data_dir) / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    @staticmethod
    def replica_name(replica):
        return f"order_worker-{replica}"

    def replica_dir(self, name):
        """The data directory of an order worker replica."""
        return Path(self.data_dir) / name

    def leader(self, timeout=10):
        """The name of the order worker replica that leads now."""
        names = [self.replica_name(replica) for replica in range(self.replicas)]
        return leading_replica({name: Path(self.data_dir) / f"{name}.log" for name in names}, timeout)

    def kill(self, name):
        """SIGKILL one process and wait for it."""
        self.processes[name].kill()
        self.processes[name].wait()

    def stop(self, name):
        """SIGTERM one process and wait for it (SIGKILL after 10 s); return its exit status."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def restart(self, name):
        """Start a process of the stack again (a replica on its own data directory); return once it
        consumes, which its log says at INFO."""
        log = Path(self.data_dir) / f"{name}.log"
        before = log.stat().st_size
        module, _, replica = name.partition("-")
        self._start(module, int(replica or 0))
        deadline = time.monotonic() + self.ready_timeout
        while b"serving " not in log.read_bytes()[before:]:
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start again\n{self.logs()}")
            time.sleep(0.05)

    def __exit__(self, *exc):
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for name in list(self.processes):
            self.stop(name)
        if "BAZAAR_NAMESPACE" not in self.env_overrides:
            self._delete_queues()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def logs(self):
        """The output of every process so far, for error messages."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(Path(self.data_dir).glob("*.log")))

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes.values()):
                raise RuntimeError(f"a stack process exited during start-up\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/stocks/GameStart", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"stack not ready after {self.ready_timeout} s\n{self.logs()}")

    def _delete_queues(self):
        settings = Settings.from_env(self.env)
        try:
            connection = pika.BlockingConnection(parameters(settings))
        except AMQPConnectionError:
            return  # no broker, so no queues to delete
        with connection:
            channel = connection.channel()
            for queue in (settings.queue(CATALOG), settings.queue(ORDER), settings.queue(STREAM),
                          settings.dead_letter_queue):
                channel.queue_delete(queue)
            channel.exchange_delete(settings.events_exchange)
