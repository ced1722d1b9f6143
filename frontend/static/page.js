// Stock Bazaar's page: polls GET /stocks with its ETag, and places orders with an Idempotency-Key;
// polls GET /system for the order replicas and the trades of the last minute.
"use strict";

const POLL_MS = 500;          // a trade shows up within about half a second
const ORDER_TIMEOUT_MS = 15000; // longer than the frontend's RPC timeout: its 504 comes first
const SHOWN_ORDERS = 10;
const SYSTEM_POLL_MS = 1000;  // replicas announce themselves every second

const $ = (id) => document.getElementById(id);
let etag = null;
let shown = new Map();        // name -> the stock as last drawn
let pendingKey = null;        // kept while an order's outcome is unknown, so a retry trades once

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));  // works on plain http too
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function errorText(response) {
  try {
    return (await response.json()).error.message;
  } catch {
    return response.statusText || "unexpected answer";
  }
}

function setFeed(text, state) {
  $("feed").textContent = text;
  $("feed").className = "feed " + state;
}

function drawStocks(stocks) {
  const rows = stocks.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.name = s.name;
    const before = shown.get(s.name);
    if (before && (before.quantity !== s.quantity || before.price !== s.price)) tr.className = "changed";
    for (const text of [s.name, s.price.toFixed(2), s.quantity, s.trading_volume]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  $("stocks").replaceChildren(...rows);
  if (shown.size === 0) {
    $("name").replaceChildren(...stocks.map((s) => new Option(s.name, s.name)));
  }
  shown = new Map(stocks.map((s) => [s.name, s]));
}

async function pollStocks() {
  try {
    const response = await fetch("/stocks", {
      headers: etag ? { "If-None-Match": etag } : {},
      cache: "no-store",
      signal: AbortSignal.timeout(5000),
    });
    if (response.status === 200) {
      etag = response.headers.get("ETag");
      drawStocks((await response.json()).data);
    } else if (response.status !== 304) {
      throw new Error(await errorText(response));
    }
    setFeed("live", "live");
  } catch (err) {
    setFeed("no updates: " + err.message + " (retrying)", "down");
  }
}

function pollForever() {
  pollStocks().finally(() => setTimeout(pollForever, POLL_MS));
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function drawReplica(r) {
  const tr = document.createElement("tr");
  tr.dataset.replica = r.name;
  const role = r.silent ? "silent" : r.leading ? "leading" : "following";
  tr.className = role;
  const roleText = r.silent ? `silent for ${Math.round(r.heard_s)} s` : role;
  tr.append(cell(r.name), cell(roleText, "role " + role), cell(r.position), cell(r.orders));
  return tr;
}

function drawSystem(system) {
  if (system.replicas.length) $("replicas").replaceChildren(...system.replicas.map(drawReplica));
  const trades = system.trades;
  $("rate").textContent = (trades.count / trades.per_second.length).toFixed(1);
  $("p50").textContent = trades.p50_ms === null ? "–" : `${trades.p50_ms.toFixed(1)} ms`;
  const most = Math.max(1, ...trades.per_second);
  $("chart").replaceChildren(...trades.per_second.map((n) => {
    const bar = document.createElement("div");
    bar.style.height = `${(100 * n) / most}%`;
    bar.title = `${n} trades`;
    return bar;
  }));
}

async function pollSystem() {
  try {
    const response = await fetch("/system", { cache: "no-store", signal: AbortSignal.timeout(5000) });
    if (response.ok) drawSystem((await response.json()).data);
  } catch {
    // the stocks feed already says the server is not answering
  }
  setTimeout(pollSystem, SYSTEM_POLL_MS);
}

function showResult(text, ok) {
  $("result").textContent = text;
  $("result").className = "result " + (ok ? "ok" : "error");
}

function addOrder(number, order) {
  const item = document.createElement("li");
  item.textContent = `#${number}: ${order.type} ${order.quantity} ${order.name}`;
  $("orders").prepend(item);
  while ($("orders").children.length > SHOWN_ORDERS) $("orders").lastChild.remove();
}

async function placeOrder(event) {
  event.preventDefault();
  const order = { name: $("name").value, quantity: Number($("quantity").value), type: event.submitter.value };
  const buttons = $("trade").querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));   // a double click submits once
  pendingKey = pendingKey || newKey();
  showResult("Placing the order…", true);
  try {
    const response = await fetch("/orders", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": pendingKey },
      body: JSON.stringify(order),
      signal: AbortSignal.timeout(ORDER_TIMEOUT_MS),
    });
    if (response.ok) {
      const number = (await response.json()).data.transaction_number;
      pendingKey = null;
      showResult(`Done: ${order.type} ${order.quantity} ${order.name}, transaction #${number}`, true);
      addOrder(number, order);
      pollStocks();
    } else {
      const message = await errorText(response);
      // 503/504: the order may or may not have happened; the same key makes a retry safe.
      const unknown = response.status === 503 || response.status === 504;
      if (!unknown) pendingKey = null;
      showResult(`Order failed (${response.status}): ${message}` +
                 (unknown ? ". Submitting again is safe: it cannot trade twice." : ""), false);
    }
  } catch (err) {
    showResult(`No answer from the server (${err.message}). Submitting again is safe: it cannot trade twice.`, false);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

$("trade").addEventListener("submit", placeOrder);
// A different order needs a key of its own.
$("trade").addEventListener("input", () => (pendingKey = null));
pollForever();
pollSystem();
