"use strict";
// The budgets' burn-down: for each money budget with a monthly window, the
// ledger's spend for the key's dimensions, summed day by day, against the
// limit and the window-end projection. The running sum is exact: decimal
// strings become BigInt nano-units, never floats; floats only size bars.

const NANO = 9;
function toNano(s) {
  const neg = s.startsWith("-");
  const [i, f = ""] = s.replace("-", "").split(".");
  const n = BigInt(i + f.padEnd(NANO, "0").slice(0, NANO));
  return neg ? -n : n;
}
function fromNano(n) {
  const neg = n < 0n;
  const s = (neg ? -n : n).toString().padStart(NANO + 1, "0");
  let frac = s.slice(-NANO).replace(/0+$/, "");
  return (neg ? "-" : "") + s.slice(0, -NANO) + (frac ? "." + frac : "");
}

// keyFilter turns a counter key ("project=search,team=a%2Cb") into report
// filters; "all" is no filter.
function keyFilter(key) {
  if (key === "all") return "";
  return key.split(",").map(t => {
    const i = t.indexOf("=");
    return "&filter." + encodeURIComponent(t.slice(0, i)) + "=" + encodeURIComponent(decodeURIComponent(t.slice(i + 1)));
  }).join("");
}

async function loadBurndowns(budgets) {
  const box = $("burndowns");
  box.replaceChildren();
  const keys = [];
  for (const b of budgets) {
    if (b.unit !== "money" || b.period !== "month") continue;
    for (const k of b.keys) if (k.resets_at) keys.push([b, k]);
  }
  for (const [b, k] of keys.slice(0, 6)) {
    const to = new Date(k.resets_at);
    const from = new Date(to);
    from.setUTCMonth(from.getUTCMonth() - 1);
    const rep = await api("/v1/usage/report?from=" + from.toISOString() + "&to=" + to.toISOString() + "&bucket=day" + keyFilter(k.key));
    burndown(box, b, k, rep.rows.filter(r => r.currency === b.currency), from, to);
  }
  if (!keys.length) box.appendChild(el("p", "No monthly money budget to draw.", "muted"));
}

// burndown appends one key's figure to box, drawn as wide as it is laid out
// so that its labels keep their size on a phone.
function burndown(box, b, k, rows, from, to) {
  const fig = box.appendChild(el("figure", undefined, "burndown"));
  fig.dataset.budget = b.name; fig.dataset.key = k.key;
  const cap = el("figcaption", b.name + " · " + k.key + ": limit " + k.limit + " " + b.currency +
    (k.projected ? ", projected " + k.projected + " " + b.currency : ""));
  const days = [];
  for (let t = from.getTime(); t < to.getTime(); t += 86400000) days.push(new Date(t).toISOString().slice(0, 10));
  const byDay = new Map(rows.map(r => [r.bucket.slice(0, 10), r.cost]));
  const today = ymd(new Date());
  let run = 0n;
  const sums = days.map(d => { if (byDay.has(d)) run += toNano(byDay.get(d)); return d <= today ? fromNano(run) : null; });
  const limit = Number(k.limit), projected = k.projected ? Number(k.projected) : 0;
  const max = niceMax(Math.max(limit, projected, ...sums.filter(s => s !== null).map(Number)));
  const width = Math.min(640, Math.max(320, Math.round(box.getBoundingClientRect().width) || 600)), L = 80, T = 10, W = width - L - 8, H = 120;
  const s = svg("svg", {viewBox: "0 0 " + width + " 160", role: "img", "aria-label": "burn-down of " + b.name + " " + k.key});
  const y = v => T + H - H * v / max;
  for (const v of [0, max / 2, max]) {
    s.appendChild(svg("line", {x1: L, x2: L + W, y1: y(v), y2: y(v), class: v ? "grid" : "axis"}));
    s.appendChild(svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, String(v) + " " + b.currency));
  }
  const w = W / days.length;
  sums.forEach((v, i) => {
    if (v === null) return;
    const r = svg("rect", {x: L + i * w + 0.5, width: Math.max(1, w - 1), y: y(Number(v)), height: T + H - y(Number(v)), "data-day": days[i], "data-spent": v});
    r.appendChild(svg("title", {}, days[i] + ": " + v + " " + b.currency + " spent since the window began"));
    s.appendChild(r);
  });
  s.appendChild(svg("line", {x1: L, x2: L + W, y1: y(limit), y2: y(limit), class: "limit"}));
  if (k.projected) {
    const last = sums.filter(v => v !== null).length;
    const p = svg("line", {x1: L + last * w, x2: L + W, y1: y(Number(sums[last - 1] || 0)), y2: y(projected), class: "projection"});
    s.appendChild(p);
  }
  s.appendChild(svg("text", {x: L + 4, y: T + H + 18}, days[0].slice(5)));
  s.appendChild(svg("text", {x: L + W, y: T + H + 18, "text-anchor": "end"}, days[days.length - 1].slice(5)));
  fig.append(cap, s);
}
