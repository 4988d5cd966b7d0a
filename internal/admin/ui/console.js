"use strict";
// The console: plain JavaScript, no build step, nothing fetched but this
// server's API. Money arrives as exact decimal strings and is shown as it
// is: totals are the server's; the page uses floats only to size bars and to
// label the chart's axis.
const $ = id => document.getElementById(id);
const params = new URLSearchParams(location.search);
const view = ["spend", "statement", "budgets"].includes(params.get("view")) ? params.get("view") : "spend";
let token = sessionStorage.getItem("tokenmeter-token") || "";

async function get(path) {
  const r = await fetch(path, {headers: token ? {Authorization: "Bearer " + token} : {}});
  if (r.status === 401) {
    $("tokenbox").hidden = false;
    throw new Error("the admin API needs a token");
  }
  if (!r.ok) throw new Error(path.split("?")[0] + ": " + r.status + " " + (await r.text()));
  return r;
}
const api = async path => (await get(path)).json();

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function cell(tr, text, cls) { return tr.appendChild(el("td", text, cls)); }

// decCmp compares two decimal strings exactly, so that ordering by cost
// never goes through a float.
function decCmp(a, b) {
  const neg = s => s.startsWith("-");
  if (neg(a) !== neg(b)) return neg(a) ? -1 : 1;
  const sign = neg(a) ? -1 : 1;
  const [ai, af = ""] = a.replace("-", "").split(".");
  const [bi, bf = ""] = b.replace("-", "").split(".");
  if (ai.length !== bi.length) return sign * (ai.length - bi.length);
  if (ai !== bi) return sign * (ai < bi ? -1 : 1);
  const n = Math.max(af.length, bf.length);
  const x = af.padEnd(n, "0"), y = bf.padEnd(n, "0");
  return x === y ? 0 : sign * (x < y ? -1 : 1);
}
const isZero = s => /^-?0*(\.0*)?$/.test(s);

// costText shows a row's cost: "unknown" when every priced thing in it was
// unpriced, "… + unknown" when some was; never 0 for unpriced usage.
function costText(cost, currency, charged, unpriced) {
  if (unpriced > 0 && isZero(cost)) return "unknown";
  if (charged === 0 && isZero(cost)) return "–";
  return cost + " " + currency + (unpriced > 0 ? " + unknown" : "");
}

// Calendar dates as YYYY-MM-DD strings; arithmetic in UTC so that no
// daylight-saving day is lost or doubled.
const ymd = d => d.toISOString().slice(0, 10);
const parseDay = s => new Date(s + "T00:00:00Z");
const addDays = (s, n) => ymd(new Date(parseDay(s).getTime() + n * 86400000));
function nextMonth(m) {
  const [y, mo] = m.split("-").map(Number);
  return ymd(new Date(Date.UTC(y, mo, 1))).slice(0, 7);
}

function setNav() {
  for (const a of document.querySelectorAll("nav a")) {
    const p = new URLSearchParams(location.search);
    p.set("view", a.dataset.view);
    a.href = "?" + p.toString();
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
  }
  $("view-" + view).hidden = false;
}

function fillSelect(sel, values, chosen) {
  for (const v of values) {
    const o = el("option", v);
    o.value = v;
    sel.appendChild(o);
  }
  if (chosen && values.includes(chosen)) sel.value = chosen;
}

// period reads the period form's state from the URL and returns the
// report's [from, to) as dates in the ledger's time zone.
function period(today) {
  const mode = params.get("mode") === "range" ? "range" : "month";
  $("mode").value = mode;
  const month = /^\d{4}-\d\d$/.test(params.get("month") || "") ? params.get("month") : today.slice(0, 7);
  const to = /^\d{4}-\d\d-\d\d$/.test(params.get("to") || "") ? params.get("to") : today;
  const from = /^\d{4}-\d\d-\d\d$/.test(params.get("from") || "") ? params.get("from") : addDays(to, -29);
  $("month").value = month; $("from").value = from; $("to").value = to;
  const showMode = () => {
    for (const e of document.querySelectorAll(".for-month")) e.hidden = $("mode").value !== "month";
    for (const e of document.querySelectorAll(".for-range")) e.hidden = $("mode").value !== "range";
  };
  $("mode").addEventListener("change", showMode);
  showMode();
  if (mode === "month") return {from: month + "-01", to: nextMonth(month) + "-01"};
  return from <= to ? {from, to: addDays(to, 1)} : {from: to, to: addDays(from, 1)};
}

async function loadSpend(cfg) {
  const keys = cfg.dimensions.concat(cfg.keys);
  const group = keys.includes(params.get("group")) ? params.get("group") : keys[0];
  fillSelect($("group"), keys, group);
  fillSelect($("fkey"), keys, params.get("fkey"));
  $("fval").value = params.get("fval") || "";
  const p = period(ymd(new Date()));
  let q = "from=" + p.from + "&to=" + p.to;
  if ($("fkey").value && $("fval").value) q += "&filter." + encodeURIComponent($("fkey").value) + "=" + encodeURIComponent($("fval").value);
  const [daily, top, models] = await Promise.all([
    api("/v1/usage/report?" + q + "&bucket=day"),
    api("/v1/usage/report?" + q + "&group_by=" + encodeURIComponent(group)),
    api("/v1/usage/report?" + q + "&group_by=model"),
  ]);
  // A total without a currency holds only unpriced records: it is counted
  // in the note below, never shown as an amount.
  const totals = (daily.totals || []).filter(t => t.currency);
  const currency = totals.length ? totals[0].currency : "";
  chart(daily.rows.filter(r => r.currency === currency), p, currency);
  $("total").textContent = totals.length ? totals.map(t => t.cost + " " + t.currency).join(" + ") : "0";
  const unpriced = daily.rows.reduce((n, r) => n + r.unpriced, 0);
  $("total-note").textContent = unpriced ? "plus " + unpriced + " unpriced requests of unknown cost" : "";
  $("group-name").textContent = group; $("top-key").textContent = group;
  fillTop(top.rows, group);
  fillMix(models.rows);
}

function fillTop(rows, group) {
  const body = document.querySelector("#top tbody");
  body.replaceChildren();
  rows.sort((a, b) => a.currency === b.currency ? decCmp(b.cost, a.cost) : (a.currency < b.currency ? -1 : 1));
  for (const r of rows.slice(0, 25)) {
    const tr = el("tr");
    tr.dataset.key = r.group[group];
    cell(tr, r.group[group] || "(none)");
    const c = cell(tr, costText(r.cost, r.currency, r.charged, r.unpriced), "num cost");
    if (c.textContent === "unknown") c.classList.add("unknown");
    cell(tr, String(r.charged), "num served");
    cell(tr, String(r.unpriced), "num unpriced");
    cell(tr, String(r.outcomes.denied || 0), "num denied");
    cell(tr, String(r.requests - r.charged - (r.outcomes.denied || 0)), "num failed");
    body.appendChild(tr);
  }
}

// The token mix; token counts are integers, exact in a double up to 2^53.
const mixClasses = [["input"], ["cache_read"], ["cache_write", "cache_write_1h"], ["output"], ["reasoning"]];
function fillMix(rows) {
  const byModel = new Map();
  for (const r of rows) {
    const m = byModel.get(r.group.model) || mixClasses.map(() => 0);
    mixClasses.forEach((cs, i) => { for (const c of cs) m[i] += r.tokens[c] || 0; });
    byModel.set(r.group.model, m);
  }
  const body = document.querySelector("#mix tbody");
  body.replaceChildren();
  for (const [model, m] of [...byModel].sort((a, b) => b[1].reduce((x, y) => x + y) - a[1].reduce((x, y) => x + y))) {
    const tr = el("tr");
    tr.dataset.model = model;
    m.forEach((n, i) => { tr.appendChild(el("td", String(n), "num " + mixClasses[i][0])); });
    tr.prepend(el("td", model));
    const sum = m.reduce((x, y) => x + y) || 1;
    const bar = el("div", undefined, "mixbar");
    bar.setAttribute("aria-hidden", "true");
    m.forEach((n, i) => { const s = el("span", undefined, "mix" + i); s.style.width = (100 * n / sum) + "%"; bar.appendChild(s); });
    tr.appendChild(el("td")).appendChild(bar);
    body.appendChild(tr);
  }
}

const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds the axis' top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// chart draws one bar per day of [p.from, p.to) with a y axis in the
// currency; each bar carries its exact amount (data-cost and its title).
function chart(rows, p, currency) {
  const box = $("chart");
  box.replaceChildren(svg("desc", {id: "chart-desc"}, "spend per day in " + (currency || "no currency")));
  $("chart-currency").textContent = currency ? "(" + currency + ")" : "";
  const byDay = new Map(rows.map(r => [r.bucket.slice(0, 10), r.cost]));
  const days = [];
  for (let d = p.from; d < p.to; d = addDays(d, 1)) days.push(d);
  const max = niceMax(Math.max(0, ...days.map(d => Number(byDay.get(d) || 0))));
  // The drawing is as wide as its box, so that labels keep their size on a
  // phone; five steps of a 1, 2 or 5 top are round numbers.
  const width = Math.max(320, Math.round(box.getBoundingClientRect().width) || 900);
  box.setAttribute("viewBox", "0 0 " + width + " 230");
  const L = 80, T = 10, W = width - L - 8, H = 180, steps = 5;
  const digits = Math.max(0, -Math.floor(Math.log10(max / steps) + 1e-9));
  for (let i = 0; i <= steps; i++) {
    const y = T + H - H * i / steps;
    box.appendChild(svg("line", {x1: L, x2: L + W, y1: y, y2: y, class: i ? "grid" : "axis"}));
    box.appendChild(svg("text", {x: L - 6, y: y + 4, "text-anchor": "end"}, (max * i / steps).toFixed(digits) + " " + currency));
  }
  box.appendChild(svg("line", {x1: L, x2: L, y1: T, y2: T + H, class: "axis"}));
  const w = W / days.length, every = Math.ceil(days.length / Math.max(2, Math.floor(W / 70)));
  days.forEach((d, i) => {
    const cost = byDay.get(d) || "0";
    const h = H * Number(cost) / max;
    const rect = svg("rect", {x: L + i * w + 1, width: Math.max(1, w - 2), y: T + H - h, height: h, "data-day": d, "data-cost": cost});
    rect.appendChild(svg("title", {}, d + ": " + cost + " " + currency));
    box.appendChild(rect);
    if (i % every === 0) box.appendChild(svg("text", {x: L + i * w + w / 2, y: T + H + 18, "text-anchor": "middle"}, d.slice(5)));
  });
}
