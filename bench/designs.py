"""A trade's broker hops in bare pika, three designs side by side: ``python -m bench.designs``.

Sequential calls from one client, in blocks that take the designs in turn (the order reversed every
other block). In each a leader appends the trade to a stream, reads it back, fsyncs a log and replies:

- ``rpc, one thread``: the client calls the leader over RPC; the leader's one thread and connection
  consume the request, publish it to the stream and read it back;
- ``rpc, two threads``: the same, the request's consumer and the stream's reader each with a thread
  and connection of their own, handing the trade over and the reply back with
  ``add_callback_threadsafe``, as the order worker does (``RpcServer`` and ``ReplicatedLog``);
- ``stream only``: the client appends the trade to the stream itself; the leader only reads, fsyncs
  and replies. One hop fewer.

``--readers N`` adds N readers of the stream with 500 credits that read in rounds of 0.2 s, as the
order and catalog replicas that follow do.
"""
import argparse
import contextlib
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid

import pika
import pika.exceptions

from runtime.settings import Settings

REPLY_TO = "amq.rabbitmq.reply-to"


class Bench:
    """The queues, the leaders' threads and the client of one run."""

    def __init__(self, url, readers):
        self.params, self.readers = pika.URLParameters(url), readers
        prefix = f"bench-designs-{uuid.uuid4().hex[:8]}"
        self.rpc, self.rpc2, self.stream = f"{prefix}.rpc", f"{prefix}.rpc2", f"{prefix}.stream"
        self.done, self.threads = threading.Event(), []
        self.log, path = tempfile.mkstemp(prefix="bench-designs-")
        os.unlink(path)  # the descriptor is all it needs

    def connect(self, prefetch):
        connection = pika.BlockingConnection(self.params)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        return connection, channel

    def start(self, *targets):
        for target in targets:
            ready = threading.Event()
            self.threads.append(threading.Thread(target=target, args=(ready,)))
            self.threads[-1].start()
            ready.wait()

    def pump(self, connection):
        while not self.done.is_set():
            connection.process_data_events(time_limit=0.2)
        close(connection)

    def apply(self, body):
        os.write(self.log, body + b"\n")
        os.fdatasync(self.log)

    def leader(self, ready):
        """``rpc, one thread`` and ``stream only``: one connection, one thread."""
        connection, channel = self.connect(500)
        channel.queue_declare(self.rpc)
        channel.queue_declare(self.stream, durable=True, arguments={"x-queue-type": "stream"})

        def on_request(_channel, delivery, props, body):
            channel.basic_publish("", self.stream, body, entry_properties("rpc", props))
            channel.basic_ack(delivery.delivery_tag)

        def on_entry(_channel, delivery, props, body):
            if props.type != "rpc2":
                self.apply(body)
                channel.basic_publish("", props.reply_to, b"ok", reply_properties(props))
            channel.basic_ack(delivery.delivery_tag)

        channel.basic_consume(self.rpc, on_request)
        channel.basic_consume(self.stream, on_entry, arguments={"x-stream-offset": "next"})
        ready.set()
        self.pump(connection)

    def two_threads(self, ready):
        """``rpc, two threads``: the request's thread hands the trade to the stream's thread and back."""
        requests, request_channel = self.connect(16)
        entries, entry_channel = self.connect(500)
        request_channel.queue_declare(self.rpc2)
        unacked = {}

        def on_request(_channel, delivery, props, body):
            unacked[props.correlation_id] = delivery.delivery_tag
            entries.add_callback_threadsafe(lambda: entry_channel.basic_publish(
                "", self.stream, body, entry_properties("rpc2", props)))

        def on_entry(_channel, delivery, props, body):
            if props.type == "rpc2":
                self.apply(body)
                tag = unacked.pop(props.correlation_id)

                def reply():
                    request_channel.basic_publish("", props.reply_to, b"ok", reply_properties(props))
                    request_channel.basic_ack(tag)
                requests.add_callback_threadsafe(reply)
            entry_channel.basic_ack(delivery.delivery_tag)

        request_channel.basic_consume(self.rpc2, on_request)
        entry_channel.basic_consume(self.stream, on_entry, arguments={"x-stream-offset": "next"})
        reader = threading.Thread(target=self.pump, args=(entries,))
        reader.start()
        ready.set()
        self.pump(requests)
        reader.join()

    def follower(self, ready):
        """A reader in rounds of 0.2 s that acks each round, as a following replica."""
        connection, channel = self.connect(500)
        last = []
        channel.basic_consume(self.stream, lambda _c, delivery, _p, _b: last.append(delivery.delivery_tag),
                              arguments={"x-stream-offset": "next"})
        ready.set()
        while not self.done.is_set():
            connection.process_data_events(time_limit=0)
            if last:
                channel.basic_ack(last[-1], multiple=True)
                last.clear()
            time.sleep(0.2)
        close(connection)

    def run(self, calls, blocks):
        """``{design: [ms per call]}``."""
        self.start(self.leader, self.two_threads, *[self.follower] * self.readers)
        connection, channel = self.connect(0)
        replies = set()
        channel.basic_consume(REPLY_TO, lambda _c, _d, props, _b: replies.add(props.correlation_id), auto_ack=True)
        designs = [("rpc, one thread", self.rpc), ("rpc, two threads", self.rpc2), ("stream only", self.stream)]
        times = {name: [] for name, _ in designs}
        try:
            for block in range(blocks):
                for name, queue in designs if block % 2 == 0 else designs[::-1]:
                    for _ in range(calls // blocks):
                        started, correlation_id = time.perf_counter(), uuid.uuid4().hex
                        channel.basic_publish("", queue, b'{"name": "GameStart", "quantity": 1, "type": "buy"}',
                                              pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id))
                        while correlation_id not in replies:
                            connection.process_data_events(time_limit=1)
                        replies.discard(correlation_id)
                        times[name].append((time.perf_counter() - started) * 1000)
        finally:
            self.done.set()
            for thread in self.threads:
                thread.join()
            for queue in (self.rpc, self.rpc2, self.stream):
                channel.queue_delete(queue)
            connection.close()
        return times


def entry_properties(design, request):
    """A stream entry's properties: the design that wrote it, and where its reply goes."""
    return pika.BasicProperties(type=design, reply_to=request.reply_to, correlation_id=request.correlation_id)


def reply_properties(request):
    return pika.BasicProperties(correlation_id=request.correlation_id)


def close(connection):
    """Close a stream reader's connection: RabbitMQ may refuse the nack of what it delivered meanwhile
    (streams take no nacks) by closing it first."""
    with contextlib.suppress(pika.exceptions.AMQPError):
        connection.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.designs", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per design (default %(default)s)")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per design (default %(default)s)")
    parser.add_argument("--readers", type=int, default=4, help="following readers (default %(default)s)")
    args = parser.parse_args(argv)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # see close()
    times = Bench(Settings.from_env().amqp_url, args.readers).run(args.calls, args.blocks)
    for name, ms in times.items():
        ms.sort()
        print(f"{name}: p50 {statistics.median(ms):.3f} ms, p90 {ms[int(len(ms) * 0.9)]:.3f} ms "
              f"({len(ms)} calls, {args.readers} following readers)")


if __name__ == "__main__":
    main()
