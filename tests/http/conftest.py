"""Fixtures for the HTTP contract without a broker: the frontend app over an in-memory transport
to the real catalog and order services, which share one ledger in the test's own directory."""
import pytest

from broker.memory import MemoryTransport
from broker.messages import RpcError
from catalog_worker.service import CatalogService
from frontend import create_app
from ledger.orders import Order, OrderLog
from ledger.stocks import Stocks
from order_worker.service import OrderService
from runtime.settings import Settings


class SoleReplica(OrderLog):
    """The only replica of the ledger, so it always leads: each order is decided as it is proposed."""

    leading = connected = True

    def __init__(self, data_dir, events):
        super().__init__(data_dir)
        self.stocks, self.events, self.announce = Stocks(), events, None

    def lead(self):
        pass

    def propose(self, trade_id, name, order_type, quantity):
        if not self.stocks.available(name, order_type, quantity):
            if self.stocks.get(name) is None:
                raise RpcError(404, f"stock {name!r} not found")
            raise RpcError(409, f"insufficient quantity of {name}: {self.stocks.get(name).quantity} available")
        order = Order(self.next_number, name, order_type, quantity, trade_id, self.next_number + 1)
        self.append(order)
        self.stocks.apply(order)
        for publication in self.announce([self.stocks.get(name)]):
            self.events.publish(publication.properties.type, publication.body)
        return order

    def wait_applied(self, seq, timeout):
        return True


class TestClientSession:
    """Flask's test client with client.session.Session's interface: ``(status, JSON body, headers)``."""

    def __init__(self, client):
        self.client = client

    def request(self, method, path, body=None, headers=None, raw=None):
        response = self.client.open(path, method=method, json=body, data=raw, headers=headers)
        return response.status_code, response.get_json(silent=True), response.headers

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body, headers=None):
        return self.request("POST", path, body=body, headers=headers)


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path, namespace="memory")


@pytest.fixture
def transport(settings):
    """The catalog and order services behind an in-memory transport, sharing one ledger."""
    transport = MemoryTransport()
    ledger = SoleReplica(settings.data_dir / "order", transport.events)
    orders = OrderService(ledger, settings)
    ledger.announce = orders.announce
    transport.serve("catalog", CatalogService(ledger, settings).handlers)
    transport.serve("order", orders.handlers)
    yield transport
    ledger.close()


@pytest.fixture
def app(settings, transport):
    app = create_app(settings, transport, transport.events)
    transport.events.start()
    yield app
    transport.events.stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client):
    """The same calls as the end-to-end tests' ``api`` session, answered in memory."""
    return TestClientSession(client)
