"""Retake the page's screenshots in docs/img/: ``python -m bench.screenshots`` (needs Chromium, about 2 minutes).

A stack of three order replicas and two catalog replicas, with a client buying and selling a few
times a second meanwhile. ``page.png`` is the page after three trades placed from it;
``page-failover.png`` the page once the killed leader (SIGKILL) shows silent and another leads.
"""
import random
import re
import threading
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from client.session import Session
from client.trader import DEFAULT_STOCKS
from harness.stack import Stack

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"  # Debian's (apt-get install chromium), as tests/stack/test_page.py drives
VIEWPORT = {"width": 1280, "height": 940}
FROM_THE_PAGE = (("GameStart", 4, "Buy"), ("AsterixCorp", 2, "Sell"), ("GameStart", 1, "Buy"))
TRADING_S = 50  # before the kill, so the chart of the last minute is mostly full


def keep_trading(url, stop, seed=1):
    """Buy, then sell, a few shares of a random stock every 50 ms until ``stop``."""
    rng, session = random.Random(seed), Session(url, timeout=10)
    while not stop.wait(0.05):
        order = {"name": rng.choice(DEFAULT_STOCKS), "quantity": rng.randint(1, 5)}
        for kind in ("buy", "sell"):
            session.post("/orders", {**order, "type": kind})
    session.close()


def trade_from(page, name, quantity, button):
    page.select_option("#name", name)
    page.fill("#quantity", str(quantity))
    page.get_by_role("button", name=button).click()
    expect(page.locator("#result")).to_contain_text("transaction #")


def main():
    with Stack(replicas=3, catalog_replicas=2) as stack, sync_playwright() as playwright:
        stop = threading.Event()
        trader = threading.Thread(target=keep_trading, args=(stack.url, stop))
        trader.start()
        started = time.monotonic()
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(stack.url)
            leading = page.locator("#replicas tr.leading")
            expect(leading).to_have_count(1, timeout=5000)
            for order in FROM_THE_PAGE:
                trade_from(page, *order)
            page.screenshot(path=IMG / "page.png")
            time.sleep(max(0.0, TRADING_S - (time.monotonic() - started)))
            leader = leading.get_attribute("data-replica")
            stack.kill(leader)
            expect(page.locator(f'#replicas tr[data-replica="{leader}"] td.role')).to_have_text(
                re.compile(r"silent for [4-9] s"), timeout=10000)
            expect(leading).to_have_count(1)
            page.screenshot(path=IMG / "page-failover.png")
            print(f"killed {leader}; {leading.get_attribute('data-replica')} leads; screenshots in {IMG}")
        finally:
            stop.set()
            trader.join()
            browser.close()


if __name__ == "__main__":
    main()
