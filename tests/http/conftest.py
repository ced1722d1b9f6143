"""Fixtures for the HTTP contract without a broker: the frontend app over an in-memory transport
to the real catalog and order services, which keep their files in the test's own directory."""
import pytest

from broker.memory import MemoryTransport
from catalog_worker.service import CatalogService
from catalog_worker.store import CatalogStore
from frontend import create_app
from order_worker.service import OrderService
from order_worker.store import OrderLog
from runtime.settings import Settings


class SoleReplica(OrderLog):
    """An order log that is the only replica, so it always leads: there is no stream to follow."""

    leading = True

    def lead(self):
        pass


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
    """The catalog and order services behind an in-memory transport."""
    transport = MemoryTransport()
    store = CatalogStore(settings.data_dir / "catalog")
    orders = SoleReplica(settings.data_dir / "order")
    transport.serve("catalog", CatalogService(store, settings).handlers)
    transport.serve("order", OrderService(orders, transport, settings.rpc_timeout / 2).handlers)
    yield transport
    store.stop()
    orders.close()


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
