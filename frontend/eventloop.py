"""waitress's event loop, with a pass that costs time in proportion to the connections that changed.

waitress's own pass (``wasyncore.poll2``) asks every open connection whether it wants to read or
write and builds a fresh ``poll()`` set from the answers, so with thousands of connections held
open by slow clients every request pays for all of them. Here one ``epoll`` set persists, and a
pass asks again only the connections whose answers may have changed: those that had an event or
were added or removed, those whose task thread pulled the server's trigger (a task thread changes
a connection only before it pulls it: output to send, its requests served), plus every connection
after waitress's maintenance, which marks the ones silent for ``channel_timeout`` for closing.
Asking every connection with a request in hand instead made each pass cost as many connections
as were busy, and the trigger is pulled once per answer: at 64 connections the loop took ~0.8 ms
of the frontend's CPU per trade, 2-3x what answering it took. Events are handled by waitress's own
``readwrite``. epoll makes this Linux only, as the deployment is.
"""
import select
from contextlib import suppress

from waitress import wasyncore
from waitress.channel import HTTPChannel


class ChannelMap(dict):
    """waitress's map of file descriptor to dispatcher, noting which descriptors came and went, and
    which ones a task thread changed (``touch``)."""

    def __init__(self):
        super().__init__()
        self.changed = set()
        self.touched = set()

    def touch(self, fd):
        self.touched.add(fd)

    def __setitem__(self, fd, dispatcher):
        super().__setitem__(fd, dispatcher)
        self.changed.add(fd)

    def __delitem__(self, fd):
        super().__delitem__(fd)
        self.changed.add(fd)

    def take_changed(self):
        """The descriptors added or removed since the last call."""
        # A task thread may close a connection, so copy the set rather than iterate it.
        changed = self.changed.copy()
        self.changed.difference_update(changed)
        return changed

    def take_touched(self):
        """The descriptors touched since the last call."""
        touched = self.touched.copy()
        self.touched.difference_update(touched)
        return touched


class _ChannelServer:
    """The server as one connection sees it: pulling its trigger first notes which connection pulled."""

    def __init__(self, server, fd):
        self._server, self._fd = server, fd

    def pull_trigger(self):
        self._server._map.touch(self._fd)
        self._server.pull_trigger()

    def __getattr__(self, name):
        return getattr(self._server, name)


class TouchingChannel(HTTPChannel):
    """An HTTPChannel whose task threads' trigger pulls say which connection they changed."""

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map=map)
        self.server = _ChannelServer(server, self._fileno)


def wanted_events(dispatcher):
    """The epoll events ``dispatcher`` waits for, as ``wasyncore.poll2`` computes them."""
    events = 0
    if dispatcher.readable():
        events |= select.EPOLLIN | select.EPOLLPRI
    if dispatcher.writable() and not dispatcher.accepting:
        events |= select.EPOLLOUT
    return events


class EventLoop:
    """Runs the passes of a waitress server created with ``map=ChannelMap()``; its connections
    become TouchingChannels."""

    def __init__(self, server):
        self.server, self.map = server, server._map
        if getattr(server, "channel_class", None) is HTTPChannel:
            server.channel_class = TouchingChannel
        self.epoll = select.epoll()
        self.registered = {}  # fd -> the events it is registered for
        self.recheck = set(self.map)  # fds whose wanted events may have changed
        self.cleanup_seen = None

    def poll(self, timeout):
        """One pass: update the registrations, wait up to ``timeout`` s, handle the events."""
        changed = self.map.take_changed()
        for fd in changed:  # a descriptor number may now belong to a new connection
            self._unregister(fd)
        fds, self.recheck = self.recheck | changed | self.map.take_touched(), set()
        self._update(fds)
        if self.server.next_channel_cleanup != self.cleanup_seen:  # maintenance ran
            self.cleanup_seen = self.server.next_channel_cleanup
            self._update(list(self.map))
        for fd, events in self.epoll.poll(timeout):
            self.recheck.add(fd)
            dispatcher = self.map.get(fd)
            if dispatcher is not None:
                wasyncore.readwrite(dispatcher, events)

    def close(self):
        self.epoll.close()

    def _update(self, fds):
        for fd in fds:
            dispatcher = self.map.get(fd)
            if dispatcher is None:
                self._unregister(fd)
                continue
            if not isinstance(dispatcher, HTTPChannel):  # the listening socket runs maintenance when asked
                self.recheck.add(fd)
            self._register(fd, dispatcher, wanted_events(dispatcher))

    def _register(self, fd, dispatcher, events):
        old = self.registered.get(fd, 0)
        if events == old:
            return
        try:
            if not events:
                self._unregister(fd)
            elif old:
                self.epoll.modify(fd, events)
            else:
                self.epoll.register(fd, events)
        except OSError:  # e.g. its socket was closed behind the map's back: poll() says POLLNVAL
            self.registered.pop(fd, None)
            wasyncore.readwrite(dispatcher, select.POLLNVAL)
            return
        if events:
            self.registered[fd] = events

    def _unregister(self, fd):
        if self.registered.pop(fd, 0):
            # Closing a descriptor removes it from the epoll set, so it may be gone already.
            with suppress(OSError):
                self.epoll.unregister(fd)
