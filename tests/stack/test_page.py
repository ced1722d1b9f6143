"""The web page in a real browser: Playwright driving Debian's Chromium (apt-get install chromium)."""
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BUY = {"name": "GameStart", "quantity": 1, "type": "buy"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get install chromium")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack):
    """The page, loaded, with the stocks drawn."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(stack.url)
    expect(row(page, "GameStart")).to_contain_text("100")
    yield page
    context.close()


def row(page, name):
    return page.locator(f'#stocks tr[data-name="{name}"]')


def trade(page, name, quantity, button="Buy", click="click"):
    page.select_option("#name", name)
    page.fill("#quantity", str(quantity))
    getattr(page.get_by_role("button", name=button), click)()


def test_buy_shows_the_transaction_the_quantity_and_the_order(page):
    trade(page, "GameStart", 2)
    expect(page.locator("#result")).to_have_text("Done: buy 2 GameStart, transaction #0")
    expect(row(page, "GameStart").locator("td")).to_have_text(["GameStart", "15.99", "98", "2"])
    expect(page.locator("#orders li")).to_have_text(["#0: buy 2 GameStart"])


def test_a_clear_error_comes_back(page):
    trade(page, "FishCo", 101)
    expect(page.locator("#result")).to_have_text(
        "Order failed (409): insufficient quantity of FishCo: 100 available")


def test_a_double_click_trades_once(page, api):
    trade(page, "BoarCo", 1, click="dblclick")
    expect(page.locator("#result")).to_contain_text("transaction #0")
    time.sleep(0.5)  # a second order, had one gone out, would have been answered by now
    assert api.get("/orders/1")[0] == 404
    assert api.get("/stocks/BoarCo")[1]["data"]["quantity"] == 99


def test_trades_elsewhere_show_within_a_second(page, api):
    for quantity in (96, 90):
        assert api.post("/orders", {**BUY, "quantity": (row_quantity(page) - quantity)})[0] == 200
        expect(row(page, "GameStart").locator("td").nth(2)).to_have_text(str(quantity), timeout=1000)


def test_a_stopped_order_worker_gives_a_clear_error(page, stack):
    stack.stop("order")
    trade(page, "GameStart", 1)
    expect(page.locator("#result")).to_have_text(
        re.compile(r"Order failed \(504\): no reply from the order service in time.* Submitting again is safe"),
        timeout=(stack.settings.rpc_timeout + 3) * 1000)
    expect(page.get_by_role("button", name="Buy")).to_be_enabled()


def row_quantity(page):
    return int(row(page, "GameStart").locator("td").nth(2).inner_text())
