"use strict";
// The statement and budget views, the downloads and the start-up; the
// helpers are console.js's.

function statementQuery() {
  return "month=" + encodeURIComponent($("st-month").value) + "&dimension=" + encodeURIComponent($("st-dim").value) +
    "&value=" + encodeURIComponent($("st-value").value);
}

async function loadStatement(cfg) {
  const today = ymd(new Date());
  const month = /^\d{4}-\d\d$/.test(params.get("month") || "") ? params.get("month") : today.slice(0, 7);
  $("st-month").value = month;
  const dim = cfg.dimensions.includes(params.get("dimension")) ? params.get("dimension") : cfg.dimensions[0];
  fillSelect($("st-dim"), cfg.dimensions, dim);
  // The values on offer are the ones with usage in the month.
  const rep = await api("/v1/usage/report?from=" + month + "-01&to=" + nextMonth(month) + "-01&group_by=" + encodeURIComponent(dim));
  const values = [...new Set(rep.rows.map(r => r.group[dim]))].sort();
  fillSelect($("st-value"), values, params.get("value"));
  $("st-csv").addEventListener("click", () => download("/v1/usage/statement?" + statementQuery() + "&format=csv").catch(showError));
  $("st-pdf").addEventListener("click", () => download("/v1/usage/statement?" + statementQuery() + "&format=pdf").catch(showError));
  const box = $("statements");
  box.replaceChildren();
  if (!values.length) {
    box.appendChild(el("p", "No usage by " + dim + " in " + month + ".", "muted"));
    return;
  }
  const res = await api("/v1/usage/statement?" + statementQuery());
  for (const st of res.statements) box.appendChild(statementTable(st));
}

function statementTable(st) {
  const div = el("div", undefined, "statement");
  div.dataset.currency = st.currency;
  div.appendChild(el("h2", st.dimension + " = " + st.value + ", " + st.month + ", in " + st.currency));
  const t = el("table");
  const head = t.createTHead().insertRow();
  for (const [h, cls] of [["provider"], ["model"], ["served", "num"], ["unpriced", "num"], ["denied", "num"], ["failed", "num"],
    ["input tokens", "num"], ["output tokens", "num"], ["cost", "num"], ["list cost", "num"]]) {
    const th = el("th", h, cls);
    th.scope = "col";
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const l of st.lines) {
    const tr = body.insertRow();
    tr.dataset.model = l.model;
    for (const [v, cls] of [[l.provider], [l.model], [l.requests, "num served"], [l.unpriced, "num unpriced"], [l.denied, "num denied"],
      [l.failed, "num failed"], [l.tokens.input || 0, "num"], [l.tokens.output || 0, "num"]]) cell(tr, String(v), cls);
    const allUnpriced = l.requests > 0 && l.unpriced === l.requests;
    cell(tr, allUnpriced ? "unknown" : costText(l.cost, st.currency, l.requests, l.unpriced), "num cost" + (allUnpriced ? " unknown" : ""));
    cell(tr, allUnpriced ? "unknown" : l.list_cost + " " + st.currency, "num list" + (allUnpriced ? " unknown" : ""));
  }
  const foot = t.createTFoot().insertRow();
  cell(foot, "Total"); cell(foot, "");
  for (const [v, cls] of [[st.requests, "num served"], [st.unpriced, "num unpriced"], [st.denied, "num denied"], [st.failed, "num failed"]]) cell(foot, String(v), cls);
  cell(foot, ""); cell(foot, "");
  cell(foot, st.total + " " + st.currency, "num total");
  cell(foot, st.list_total + " " + st.currency, "num list-total");
  const scroll = el("div", undefined, "scroll");
  scroll.appendChild(t);
  div.appendChild(scroll);
  if (st.unpriced) div.appendChild(el("p", st.unpriced + " served requests had no price: their cost is unknown and not in the total.", "muted"));
  return div;
}

async function loadBudgets() {
  const res = await api("/v1/budgets");
  const body = document.querySelector("#budgets tbody");
  body.replaceChildren();
  const when = s => s ? s.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "";
  for (const b of res.budgets) {
    const unit = b.currency || b.unit;
    const keys = b.keys.length ? b.keys : [{key: "–", spent: "0", reserved: "0", remaining: b.limit, limit: b.limit, resets_at: ""}];
    for (const k of keys) {
      const tr = el("tr");
      tr.dataset.budget = b.name; tr.dataset.key = k.key;
      cell(tr, b.name + (b.shadow ? " (shadow)" : ""));
      cell(tr, k.key);
      for (const [v, cls] of [[k.spent, "spent"], [k.reserved, "reserved"], [k.remaining, "remaining"], [k.limit || b.limit, "limit"]]) cell(tr, v + " " + unit, "num " + cls);
      cell(tr, k.projected ? k.projected + " " + unit : "not yet", "num projected");
      cell(tr, when(k.resets_at), "resets");
      const crossed = k.thresholds_crossed || [];
      const alerts = b.alert_at || [];
      const c = cell(tr, alerts.length ? (crossed.length ? crossed.map(p => p + "%").join(", ") : "none of " + alerts.map(p => p + "%").join(", ")) : "no thresholds", "thresholds");
      if (crossed.length) c.classList.add("crossed");
      body.appendChild(tr);
    }
  }
  await loadBurndowns(res.budgets);
}

// download fetches with the token (a link could not send it) and saves the
// answer under the server's file name.
async function download(path) {
  const r = await get(path);
  const m = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(await r.blob());
  const a = el("a");
  a.href = url; a.download = m ? m[1] : "tokenmeter-download";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function showError(e) { $("error").textContent = e.message; }

async function load() {
  $("error").textContent = "";
  const cfg = await api("/v1/console/config");
  $("tz").textContent = "Days in " + cfg.time_zone + ".";
  if (view === "spend") await loadSpend(cfg);
  else if (view === "statement") await loadStatement(cfg);
  else await loadBudgets();
  document.body.dataset.loaded = "true";
}

$("tokenbox").addEventListener("submit", ev => {
  ev.preventDefault();
  token = $("token").value;
  sessionStorage.setItem("tokenmeter-token", token);
  $("tokenbox").hidden = true;
  load().catch(showError);
});
setNav();
load().catch(showError);
