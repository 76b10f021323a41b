// nasfleet dashboard. Plain JavaScript, no framework, no build step: the
// binary embeds this file (include_str!) and serves it; `nasfleet report`
// inlines it with the run's data (window.NASFLEET_STATIC) into one HTML file.
//
// Data flow: /api/runs/R/summary (counts, updates, heat map, live fleet) is
// polled every 1.5 s; /api/runs/R/children?from=N is a long poll that returns
// as soon as children past N are applied, so a new child shows within a
// fraction of a second; the page keeps the children as columns and draws the
// charts on <canvas> (20,000 points draw in a few milliseconds, where SVG or
// DOM nodes per point would not).
'use strict';

const STATIC = window.NASFLEET_STATIC || null;
const params = new URLSearchParams(location.search);
const STATUS = ['ok', 'failed', 'dead', 'stopped'];
const STATUS_LABEL = { ok: 'ok', failed: 'failed', dead: 'dead-lettered', stopped: 'stopped early' };
const COLOR = { ok: '#2f9e44', failed: '#e8590c', dead: '#c92a2a', stopped: '#9c36b5', inflight: '#1c7ed6' };
const HIGHLIGHT = ['#d6336c', '#f08c00', '#1098ad', '#5f3dc4', '#2b8a3e'];

let run = params.get('run');
let view = params.get('view');
let single = null;
let runsData = null;
let summary = null;
let summaryError = null;
let childDetail = null;
let reachable = true;
const C = { n: 0, seq: [], status: [], reward: [], worker: [], started: [], finished: [], applied: [], pv: [], curve: [], reason: {}, workers: [] };
const table = { sort: 'seq', desc: false, page: 0, status: '', rmin: '', rmax: '', worker: '' };
let xAxis = params.get('x') || 'children';

const $ = (sel, root) => (root || document).querySelector(sel);
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'text') e.textContent = v; else if (k === 'html') e.innerHTML = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : document.createTextNode(String(k)));
  return e;
}
const fmt = (x, d = 4) => (x === null || x === undefined || Number.isNaN(x)) ? '–' : Number(x).toFixed(d);
const fmtInt = x => (x === null || x === undefined) ? '–' : String(x);
function fmtTime(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const p = n => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}
function fmtDur(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}
const enc = encodeURIComponent;
function link(v, extra) {
  const q = new URLSearchParams();
  if (run) q.set('run', run);
  q.set('view', v);
  for (const [k, val] of Object.entries(extra || {})) q.set(k, val);
  return '?' + q.toString();
}

async function api(path) {
  if (STATIC) {
    const key = path.replace(/\?.*$/, '');
    if (key in STATIC.api) return STATIC.api[key];
    throw new Error('not in this report: ' + key);
  }
  const r = await fetch(path, { cache: 'no-store' });
  const body = await r.json().catch(() => ({ error: 'the server answered ' + r.status + ' without JSON' }));
  if (!r.ok || body.error) throw new Error(body.error || ('HTTP ' + r.status));
  return body;
}

function mergeChildren(ch) {
  if (ch.total < C.n) { // the run was cut back (resumed): start over
    for (const k of Object.keys(C)) if (Array.isArray(C[k])) C[k] = [];
    C.n = 0; C.reason = {};
  }
  if (ch.from !== C.n) return false;
  C.workers = ch.workers;
  for (const k of ['seq', 'status', 'reward', 'worker', 'started', 'finished', 'applied', 'pv', 'curve']) {
    for (const v of ch[k]) C[k].push(v);
  }
  Object.assign(C.reason, ch.reason || {});
  C.n += ch.seq.length;
  document.body.dataset.done = C.n;
  if (document.body.dataset.firstDone === undefined) document.body.dataset.firstDone = C.n;
  return ch.seq.length > 0;
}

// ---------------------------------------------------------------- charts

// About n round ticks over [lo, hi], at least minStep apart (1 for counts),
// each with a label of as many decimals as the step needs (so neighbours differ).
function niceTicks(lo, hi, n, minStep = 0) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = Math.max((hi - lo) / n, minStep), p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * p).find(s => s >= raw);
  const decimals = Math.min(12, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push({ v: +v.toFixed(12), label: v.toFixed(decimals) });
  return out;
}

// series: {type:'points'|'line'|'step', xs, ys, color, width, alpha, dash, size}
function chart(canvas, series, o) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || 900, H = canvas.clientHeight || 340;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  const L = 70, R = 14, T = 12, B = 40;
  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity, count = 0;
  for (const s of series) for (let i = 0; i < s.xs.length; i++) {
    const x = s.xs[i], y = s.ys[i];
    if (x === null || y === null || !isFinite(x) || !isFinite(y)) continue;
    if (x < xlo) xlo = x; if (x > xhi) xhi = x; if (y < ylo) ylo = y; if (y > yhi) yhi = y;
    if (s.type === 'points') count++;
  }
  canvas.dataset.points = count;
  if (o.ymin !== undefined) ylo = Math.min(ylo, o.ymin);
  if (!isFinite(xlo)) { g.fillStyle = '#667085'; g.fillText('no data yet', W / 2 - 30, H / 2); return; }
  if (xhi === xlo) { xhi = xlo + 1; }
  if (yhi === ylo) { yhi = ylo + 0.5; ylo = ylo - 0.5; }
  const pad = (yhi - ylo) * 0.04; ylo -= pad; yhi += pad;
  const X = x => L + (x - xlo) / (xhi - xlo) * (W - L - R);
  const Y = y => T + (1 - (y - ylo) / (yhi - ylo)) * (H - T - B);
  g.font = '11px system-ui, sans-serif'; g.strokeStyle = '#e3e7ee'; g.fillStyle = '#667085'; g.lineWidth = 1;
  g.textAlign = 'right';
  for (const { v: t, label } of niceTicks(ylo, yhi, 6)) { g.beginPath(); g.moveTo(L, Y(t)); g.lineTo(W - R, Y(t)); g.stroke(); g.fillText(label, L - 5, Y(t) + 4); }
  g.textAlign = 'left';
  for (const { v: t, label } of niceTicks(xlo, xhi, 8, o.xint ? 1 : 0)) { g.beginPath(); g.moveTo(X(t), T); g.lineTo(X(t), H - B); g.stroke(); g.fillText(o.xfmt ? o.xfmt(t) : label, X(t) - 10, H - B + 14); }
  g.fillStyle = '#1d2330'; g.fillText(o.xlabel || '', W / 2 - 40, H - 6);
  g.save(); g.translate(11, T + (H - T - B) / 2 + 20); g.rotate(-Math.PI / 2); g.fillText(o.ylabel || '', 0, 0); g.restore();
  for (const s of series) {
    g.globalAlpha = s.alpha === undefined ? 1 : s.alpha;
    g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = s.width || 1.5;
    g.setLineDash(s.dash || []);
    if (s.type === 'points') {
      const r = s.size || 2.5;
      for (let i = 0; i < s.xs.length; i++) {
        const x = s.xs[i], y = s.ys[i];
        if (x === null || y === null || !isFinite(y)) continue;
        g.fillRect(X(x) - r / 2, Y(y) - r / 2, r, r);
      }
    } else {
      g.beginPath(); let started = false, py = null;
      for (let i = 0; i < s.xs.length; i++) {
        const x = s.xs[i], y = s.ys[i];
        if (x === null || y === null || !isFinite(y)) { started = false; continue; }
        if (!started) { g.moveTo(X(x), Y(y)); started = true; }
        else { if (s.type === 'step') g.lineTo(X(x), Y(py)); g.lineTo(X(x), Y(y)); }
        py = y;
      }
      g.stroke();
    }
  }
  g.globalAlpha = 1; g.setLineDash([]);
}

function legend(items) {
  return h('div', { class: 'legend' }, items.map(([c, t]) => h('span', {}, h('i', { style: 'background:' + c }), t)));
}

// ---------------------------------------------------------------- derived data

function bestSoFar() {
  let best = null; const ys = [];
  for (let i = 0; i < C.n; i++) { const r = C.reward[i]; if (r !== null && (best === null || r > best)) best = r; ys.push(best); }
  return ys;
}
function xsFor(kind) {
  if (kind === 'time') { const t0 = C.applied.length ? Math.min(...C.applied.slice(0, 1)) : 0; return C.applied.map(a => (a - t0) / 60000); }
  return C.seq.map((_, i) => i + 1);
}
function topChildren(k) {
  const idx = [];
  for (let i = 0; i < C.n; i++) if (C.reward[i] !== null) idx.push(i);
  idx.sort((a, b) => C.reward[b] - C.reward[a]);
  return idx.slice(0, k);
}

// ---------------------------------------------------------------- views

function notices(list, cls) {
  const ul = $('#notices');
  for (const n of list || []) ul.append(h('li', { class: cls || '' }, n));
}

function card(id, k, v) { return h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v', id }, v)); }

function viewRuns(root) {
  root.append(h('h2', {}, 'Runs'));
  const rows = (runsData && runsData.runs) || [];
  const t = h('table', { id: 'runs' },
    h('thead', {}, h('tr', {}, ['run', 'space', 'strategy', 'children done / planned', 'best reward', 'state', 'started'].map(c => h('th', {}, c)))),
    h('tbody', {}, rows.map(r => h('tr', { 'data-run': r.name },
      h('td', {}, h('a', { href: '?run=' + enc(r.name) + '&view=overview' }, r.name)),
      h('td', {}, r.space), h('td', {}, r.strategy),
      h('td', { class: 'num done' }, `${r.done} / ${r.planned}`),
      h('td', { class: 'num best' }, fmt(r.best)),
      h('td', {}, h('span', { class: 'st st-' + r.state }, r.state)),
      h('td', {}, fmtTime(r.started_ms))))));
  root.append(t);
  if (!rows.length) root.append(h('p', { class: 'muted' }, 'No runs in this directory yet.'));
}

function liveCards(live) {
  const s = live && live.status;
  return [
    card('v-depth', 'queue depth', s ? fmtInt(s.depth) : '–'),
    card('v-inflight', 'in flight', s ? fmtInt(s.in_flight_total) : '–'),
    card('v-deadletters', 'dead letters', s ? fmtInt(s.dead_total) : fmtInt(summary.dead)),
    card('v-workers', 'live workers', s ? fmtInt(s.workers.length) : '–'),
  ];
}

function viewOverview(root) {
  const r = summary.run;
  root.append(h('h2', {}, 'Run ', h('span', { id: 'run-name' }, r.name), ' ', h('span', { class: 'st st-' + r.state, id: 'run-state' }, r.state)));
  const best = C.n ? Math.max(...C.reward.filter(x => x !== null)) : null;
  root.append(h('div', { class: 'cards' },
    card('v-done', 'children done / planned', `${C.n} / ${r.planned}`),
    card('v-best', 'best so far', r.best === null ? '–' : fmt(r.best)),
    card('v-rate', 'children per hour', summary.children_per_hour === null ? '–' : summary.children_per_hour.toFixed(1)),
    card('v-policy', 'policy version', fmtInt(summary.policy_version)),
    card('v-failed', 'failed / dead / stopped early', `${summary.failed} / ${summary.dead} / ${summary.stopped}`),
    ...liveCards(summary.live),
    card('v-space', 'space · strategy', `${r.space} · ${r.strategy}`),
  ));
  const pct = r.planned ? Math.min(100, 100 * C.n / r.planned) : 0;
  root.append(h('div', { class: 'panel' }, h('div', { class: 'k muted' }, `progress ${pct.toFixed(1)} %`),
    h('div', { style: 'height:8px;background:#e3e7ee;border-radius:4px' }, h('div', { id: 'progress', style: `height:8px;width:${pct}%;background:#2f6fdb;border-radius:4px` }))));
  void best;
  viewBest(root, true);
}

function viewBest(root, embedded) {
  if (!embedded) root.append(h('h2', {}, 'Best so far'));
  const panel = h('div', { class: 'panel' });
  const sel = h('select', { id: 'xaxis', onchange: e => { xAxis = e.target.value; render(); } },
    h('option', { value: 'children' }, 'against children'), h('option', { value: 'time' }, 'against wall time (minutes)'));
  sel.value = xAxis;
  panel.append(h('div', { class: 'filters' }, h('b', {}, 'Reward of every child and the best so far'), sel,
    legend([[COLOR.ok, 'ok'], [COLOR.failed, 'failed'], [COLOR.dead, 'dead-lettered'], [COLOR.stopped, 'stopped early'], ['#1d2330', 'best so far']])));
  const cv = h('canvas', { class: 'chart', id: 'chart-best' });
  panel.append(cv); root.append(panel);
  const xs = xsFor(xAxis), ys = C.reward;
  const rewards = ys.filter(y => y !== null);
  const floor = rewards.length ? Math.min(...rewards) : 0;
  const series = STATUS.map((st, k) => {
    const sx = [], sy = [];
    for (let i = 0; i < C.n; i++) if (C.status[i] === k) { sx.push(xs[i]); sy.push(ys[i] === null ? floor : ys[i]); }
    return { type: 'points', xs: sx, ys: sy, color: COLOR[st], size: C.n > 5000 ? 2 : 4 };
  });
  series.push({ type: 'step', xs, ys: bestSoFar(), color: '#1d2330', width: 2 });
  // Drawn at once (not in an animation frame): the canvas is in the page, so its size is known.
  chart(cv, series, { xlabel: xAxis === 'time' ? 'minutes since the first child' : 'children (in order applied)', ylabel: 'reward', xint: xAxis !== 'time' });
}

function viewCurves(root) {
  root.append(h('h2', {}, 'Learning curves'));
  const metric = summary.metric;
  const panel = h('div', { class: 'panel' });
  const top = topChildren(5);
  panel.append(h('div', { class: 'filters' }, h('b', {}, `${metric} per epoch of every child`),
    legend([['#adb5bd', 'finished'], [COLOR.inflight, 'in flight'], ...top.map((i, k) => [HIGHLIGHT[k], `#${C.seq[i]} (${fmt(C.reward[i])})`])])));
  const cv = h('canvas', { class: 'chart', id: 'chart-curves', style: 'height:420px' });
  panel.append(cv); root.append(panel);
  const series = [];
  const topSet = new Set(top);
  let drawn = 0;
  for (let i = 0; i < C.n; i++) {
    const c = C.curve[i]; if (!c || !c.length || topSet.has(i)) continue;
    series.push({ type: 'line', xs: c.map((_, e) => e + 1), ys: c, color: '#868e96', alpha: C.n > 2000 ? 0.08 : 0.35, width: 1 });
    drawn++;
  }
  const inflight = (summary.live && summary.live.inflight) || [];
  for (const f of inflight) {
    series.push({ type: 'line', xs: f.points.map(p => p[0]), ys: f.points.map(p => p[1]), color: COLOR.inflight, width: 2, dash: [5, 3] });
    series.push({ type: 'points', xs: f.points.map(p => p[0]), ys: f.points.map(p => p[1]), color: COLOR.inflight, size: 5 });
  }
  top.forEach((i, k) => { const c = C.curve[i] || []; series.push({ type: 'line', xs: c.map((_, e) => e + 1), ys: c, color: HIGHLIGHT[k], width: 2.5 }); drawn++; });
  cv.dataset.curves = drawn; cv.dataset.inflight = inflight.length;
  chart(cv, series, { xlabel: 'epoch', ylabel: metric, xint: true });
}

function filtered() {
  const out = [];
  const rmin = table.rmin === '' ? -Infinity : +table.rmin, rmax = table.rmax === '' ? Infinity : +table.rmax;
  for (let i = 0; i < C.n; i++) {
    if (table.status !== '' && STATUS[C.status[i]] !== table.status) continue;
    if (table.worker !== '' && C.workers[C.worker[i]] !== table.worker) continue;
    const r = C.reward[i];
    if ((table.rmin !== '' || table.rmax !== '') && (r === null || r < rmin || r > rmax)) continue;
    out.push(i);
  }
  const key = { seq: i => C.seq[i], status: i => C.status[i], reward: i => C.reward[i] === null ? -Infinity : C.reward[i],
    worker: i => C.workers[C.worker[i]], epochs: i => (C.curve[i] || []).length, last: i => lastOf(C.curve[i]),
    seconds: i => secondsOf(i), pv: i => C.pv[i], applied: i => C.applied[i] }[table.sort];
  out.sort((a, b) => { const x = key(a), y = key(b); const c = x < y ? -1 : x > y ? 1 : a - b; return table.desc ? -c : c; });
  return out;
}
const lastOf = c => (c && c.length) ? c[c.length - 1] : null;
const secondsOf = i => (C.started[i] && C.finished[i]) ? (C.finished[i] - C.started[i]) / 1000 : null;

function viewChildren(root) {
  root.append(h('h2', {}, 'Children'));
  const rows = filtered();
  const set = (k, v) => { table[k] = v; table.page = 0; render(); };
  const status = h('select', { id: 'f-status', onchange: e => set('status', e.target.value) }, h('option', { value: '' }, 'any status'), STATUS.map(s => h('option', { value: s }, STATUS_LABEL[s])));
  status.value = table.status;
  const worker = h('select', { id: 'f-worker', onchange: e => set('worker', e.target.value) }, h('option', { value: '' }, 'any worker'), C.workers.map(w => h('option', { value: w }, w)));
  worker.value = table.worker;
  const rmin = h('input', { id: 'f-rmin', size: 6, placeholder: 'min reward', value: table.rmin, onchange: e => set('rmin', e.target.value) });
  const rmax = h('input', { id: 'f-rmax', size: 6, placeholder: 'max reward', value: table.rmax, onchange: e => set('rmax', e.target.value) });
  root.append(h('div', { class: 'filters' }, status, 'reward', rmin, '–', rmax, worker,
    h('span', { id: 'children-count', 'data-shown': rows.length, 'data-total': C.n }, `${rows.length} of ${C.n} children`)));
  const per = 100, pages = Math.max(1, Math.ceil(rows.length / per));
  table.page = Math.min(table.page, pages - 1);
  const cols = [['seq', 'child', 1], ['status', 'status', 0], ['reward', 'reward', 1], ['last', summary.metric + ' (last epoch)', 1], ['epochs', 'epochs', 1], ['worker', 'worker', 0], ['seconds', 'training time', 1], ['pv', 'policy version', 1], ['applied', 'applied', 0]];
  const head = h('tr', {}, cols.map(([k, t, num]) => h('th', { class: num ? 'num' : '', 'data-key': k, onclick: () => { if (table.sort === k) table.desc = !table.desc; else { table.sort = k; table.desc = k === 'reward'; } render(); } }, t + (table.sort === k ? (table.desc ? ' ▼' : ' ▲') : ''))));
  const body = h('tbody', {}, rows.slice(table.page * per, table.page * per + per).map(i => h('tr', { 'data-seq': C.seq[i] },
    h('td', { class: 'num' }, h('a', { href: link('child', { seq: C.seq[i] }) }, '#' + C.seq[i])),
    h('td', {}, h('span', { class: 'st st-' + STATUS[C.status[i]] }, STATUS_LABEL[STATUS[C.status[i]]])),
    h('td', { class: 'num reward' }, fmt(C.reward[i])),
    h('td', { class: 'num' }, fmt(lastOf(C.curve[i]))),
    h('td', { class: 'num' }, (C.curve[i] || []).length),
    h('td', {}, C.workers[C.worker[i]]),
    h('td', { class: 'num' }, secondsOf(i) === null ? '–' : secondsOf(i).toFixed(1) + ' s'),
    h('td', { class: 'num' }, C.pv[i]),
    h('td', {}, fmtTime(C.applied[i])))));
  root.append(h('table', { id: 'children' }, h('thead', {}, head), body));
  root.append(h('div', { class: 'pager' }, h('button', { onclick: () => { table.page = Math.max(0, table.page - 1); render(); } }, '‹ previous'),
    `page ${table.page + 1} of ${pages}`, ' ', h('button', { onclick: () => { table.page = Math.min(pages - 1, table.page + 1); render(); } }, 'next ›')));
}

function viewChild(root) {
  const d = childDetail;
  const seq = params.get('seq');
  if (!d) { root.append(h('p', {}, 'loading child ' + seq + '…')); return; }
  if (d.error) { root.append(h('h2', {}, 'Child #' + seq)); notices([d.error], 'err'); return; }
  const l = d.line;
  const st = d.status;
  root.append(h('h2', {}, 'Child #' + l.seq + ' ', h('span', { class: 'st st-' + st, id: 'child-status' }, STATUS_LABEL[st] || st), ' ', h('span', { class: 'muted' }, l.job_id)));
  const dur = (l.started_ms && l.finished_ms) ? l.finished_ms - l.started_ms : null;
  root.append(h('div', { class: 'cards' },
    card('child-reward', 'reward', fmt(l.reward, 6)),
    card('child-worker', 'worker', l.worker || '–'),
    card('child-time', 'training time', fmtDur(dur)),
    card('child-pv', 'policy version', fmtInt(l.policy_version)),
    card('child-batch', 'batch', fmtInt(l.batch)),
    card('child-attempts', 'attempts', d.attempts === null || d.attempts === undefined ? 'not recorded' : String(d.attempts)),
  ));
  const facts = h('table', { id: 'child-facts' }, h('tbody', {},
    [['started', fmtTime(l.started_ms)], ['finished', fmtTime(l.finished_ms)], ['applied by the controller', fmtTime(l.applied_ms)],
      ['reason', l.reason || '–'], ['detail', l.detail || '–']].map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { 'data-k': k }, v)))));
  root.append(h('div', { class: 'panel' }, facts));
  const arch = h('div', { class: 'panel arch', id: 'child-svg' });
  if (d.svg) arch.innerHTML = d.svg; else arch.textContent = d.svg_error || 'no picture';
  root.append(h('h3', {}, 'Architecture'), arch);
  const m = Array.isArray(l.metrics) ? l.metrics : [];
  const keys = m.length ? Object.keys(m[0]) : [];
  root.append(h('h3', {}, 'Per-epoch metrics'), h('table', { id: 'child-metrics' }, h('thead', {}, h('tr', {}, keys.map(k => h('th', { class: 'num' }, k)))),
    h('tbody', {}, m.map(e => h('tr', {}, keys.map(k => h('td', { class: 'num' }, typeof e[k] === 'number' && !Number.isInteger(e[k]) ? fmt(e[k], 4) : fmtInt(e[k]))))))));
  root.append(h('h3', {}, 'Architecture JSON'), h('pre', { id: 'child-json' }, JSON.stringify(l.arch, null, 2)));
}

function viewController(root) {
  root.append(h('h2', {}, 'Controller'));
  const u = summary.updates;
  root.append(h('p', { class: 'muted' }, h('span', { id: 'updates-count' }, String(u.batch.length)), ' updates; policy version ', String(summary.policy_version)));
  const grid = h('div', { class: 'grid2' });
  const c1 = h('canvas', { class: 'chart', id: 'chart-reward' }), c2 = h('canvas', { class: 'chart', id: 'chart-entropy' });
  grid.append(h('div', { class: 'panel' }, h('b', {}, 'Mean reward per update, and the baseline'), legend([['#2f6fdb', 'mean reward'], ['#e8590c', 'baseline']]), c1),
    h('div', { class: 'panel' }, h('b', {}, 'Policy entropy per update (nats)'), c2));
  root.append(grid);
  const xs = u.batch.map((_, i) => i + 1);
  chart(c1, [{ type: 'line', xs, ys: u.mean_reward, color: '#2f6fdb' }, { type: 'line', xs, ys: u.baseline, color: '#e8590c', dash: [6, 3] }], { xlabel: 'update', ylabel: 'reward', xint: true });
  chart(c2, [{ type: 'line', xs, ys: u.entropy, color: '#5f3dc4' }], { xlabel: 'update', ylabel: 'entropy', xint: true });
  const hm = summary.heatmap;
  root.append(h('h3', {}, 'What the controller chooses now'));
  if (!hm) { root.append(h('p', { class: 'muted' }, 'No child sampled yet.')); return; }
  root.append(h('p', { class: 'muted', id: 'heatmap-source', 'data-source': hm.source }, hm.source === 'policy'
    ? `The controller's probability of each choice at each decision step after update ${hm.policy_version}, along its likeliest architecture (outlined: the choice it would take; each step's probabilities are given the choices above it).`
    : `Share of each choice at each decision step among the last ${hm.window} children proposed (this strategy's current choice frequencies, estimated from its proposals).`));
  const width = Math.max(...hm.rows.map(r => r.p.length));
  const t = h('table', { class: 'heat', id: 'heatmap' }, h('tbody', {}, hm.rows.map(r => h('tr', {},
    h('td', { class: 'lab' }, r.label),
    [...Array(width).keys()].map(k => {
      const p = r.p[k];
      if (p === undefined) return h('td', {});
      const bg = `rgba(47,111,219,${(0.08 + 0.92 * p).toFixed(3)})`;
      const chosen = r.chosen === k;
      return h('td', { style: `background:${bg};color:${p > 0.5 ? '#fff' : '#1d2330'}${chosen ? ';outline:2px solid #e8590c;outline-offset:-2px' : ''}`, class: chosen ? 'chosen' : '', 'data-p': String(p), title: `${r.choices[k]}: ${(100 * p).toFixed(1)} %` }, r.choices[k], h('br'), (100 * p).toFixed(0) + '%');
    })))));
  root.append(h('div', { class: 'panel', style: 'overflow:auto' }, t));
}

function viewFleet(root) {
  root.append(h('h2', {}, 'Fleet'));
  const live = summary.live;
  const s = live && live.status;
  if (!s) {
    root.append(h('p', { class: 'muted', id: 'fleet-offline' }, live && live.error ? 'No live data: ' + live.error : 'No queue connected: the workers and the queue are shown for fleet runs (start with --redis URL) and for `nasfleet local --dashboard`. The run directory still gives every finished child.'));
  } else {
    root.append(h('div', { class: 'cards' }, liveCards(live)));
    root.append(h('h3', {}, 'Workers'), h('table', { id: 'workers' },
      h('thead', {}, h('tr', {}, ['worker', 'host', 'device', 'job', 'epoch', 'last metric', 'attempt', 'last heartbeat'].map(c => h('th', {}, c)))),
      h('tbody', {}, s.workers.map(w => {
        const p = w.progress || {};
        const m = p.metrics || {};
        const seq = w.job_id ? +w.job_id.slice(w.job_id.lastIndexOf('-') + 1) : null;
        return h('tr', { 'data-worker': w.consumer },
          h('td', {}, w.consumer), h('td', {}, w.host), h('td', {}, w.device),
          h('td', {}, w.job_id ? h('a', { href: link('child', { seq }) }, w.job_id) : 'idle'),
          h('td', {}, p.epoch !== undefined && p.epoch !== null ? `${p.epoch} / ${p.epochs}` : (w.job_id ? `0 / ${p.epochs || '?'}` : '–')),
          h('td', { class: 'num' }, fmt(m.valid_accuracy !== undefined && m.valid_accuracy !== null ? m.valid_accuracy : m.valid_perplexity)),
          h('td', { class: 'num' }, fmtInt(p.deliveries)),
          h('td', {}, (w.seen_ago_ms / 1000).toFixed(1) + ' s ago'));
      }))));
    root.append(h('h3', {}, 'In flight'), h('table', { id: 'inflight' },
      h('thead', {}, h('tr', {}, ['job', 'owner', 'idle', 'attempts'].map(c => h('th', {}, c)))),
      h('tbody', {}, s.in_flight.map(f => h('tr', {}, h('td', {}, f.job_id), h('td', {}, f.owner), h('td', {}, (f.idle_ms / 1000).toFixed(1) + ' s'), h('td', { class: 'num' }, f.attempts))))));
  }
  root.append(h('h3', {}, 'Dead letters'));
  const dead = s ? s.dead_letters.map(d => [d.job_id, d.reason, d.error, d.attempts, d.by]) :
    C.seq.map((q, i) => [q, i]).filter(([, i]) => C.status[i] === 2).map(([q]) => [`#${q}`, C.reason[q] || '', '', '–', '']);
  root.append(h('table', { id: 'dead' }, h('thead', {}, h('tr', {}, ['job', 'reason', 'detail', 'attempts', 'by'].map(c => h('th', {}, c)))),
    h('tbody', {}, dead.map(r => h('tr', {}, r.map(v => h('td', {}, String(v))))))));
  if (!dead.length) root.append(h('p', { class: 'muted' }, 'none'));
}

// ---------------------------------------------------------------- shell

const VIEWS = { overview: ['Overview', viewOverview], best: ['Best so far', viewBest], curves: ['Learning curves', viewCurves], children: ['Children', viewChildren],
  controller: ['Controller', viewController], fleet: ['Fleet', viewFleet], child: ['Child', viewChild] };

function render() {
  const nav = $('#nav'); nav.textContent = '';
  if (!single || !run) nav.append(h('a', { href: '?view=runs', class: view === 'runs' ? 'on' : '' }, 'Runs'));
  if (run) for (const [k, [t]] of Object.entries(VIEWS)) if (k !== 'child' || view === 'child') nav.append(h('a', { href: link(k), class: view === k ? 'on' : '' }, t));
  $('#runname').textContent = run ? 'run ' + run : '';
  const root = $('#view'); root.textContent = '';
  $('#notices').textContent = '';
  if (STATIC) notices(['A static report written by `nasfleet report` at ' + fmtTime(STATIC.written_ms) + '.']);
  if (!reachable) notices(['The dashboard server does not answer; showing the last data received.'], 'err');
  if (view === 'runs') { if (runsData) notices(runsData.notices); viewRuns(root); }
  else if (summaryError) { notices([summaryError], 'err'); }
  else if (!summary) { root.append(h('p', {}, 'loading…')); return; }
  else {
    notices(summary.notices);
    if (summary.live && summary.live.error) notices(['Live fleet data unavailable: ' + summary.live.error], 'err');
    (VIEWS[view] || VIEWS.overview)[1](root);
  }
  document.body.dataset.view = view;
  // When the first full render ended, in ms since the navigation started
  // (what bench_load reads for the load time in an open browser).
  if (!document.body.dataset.ready) document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = '1';
}

async function loadSummary() {
  try { summary = await api(`/api/runs/${enc(run)}/summary`); summaryError = null; reachable = true; }
  catch (e) { if (e instanceof TypeError) reachable = false; else summaryError = e.message; }
}
async function loadChildren(wait) {
  try {
    const ch = await api(`/api/runs/${enc(run)}/children?from=${C.n}&wait=${wait}`);
    reachable = true;
    return mergeChildren(ch);
  } catch (e) { if (e instanceof TypeError) reachable = false; return false; }
}

async function boot() {
  try { runsData = await api('/api/runs'); single = runsData.single; } catch (e) { runsData = { runs: [], notices: [e.message] }; }
  if (!run && single) run = single;
  if (!view) view = run ? 'overview' : 'runs';
  if (view === 'runs') { render(); if (!STATIC) setInterval(async () => { try { runsData = await api('/api/runs'); reachable = true; } catch (e) { reachable = false; } render(); }, 2000); return; }
  await loadSummary();
  await loadChildren(0);
  if (view === 'child') {
    const seq = params.get('seq');
    try { childDetail = await api(`/api/runs/${enc(run)}/children/${enc(seq)}`); } catch (e) { childDetail = { error: e.message }; }
  }
  render();
  if (STATIC) return;
  // The summary (counts, updates, fleet) every 1.5 s.
  (async function summaryLoop() { for (;;) { await new Promise(r => setTimeout(r, 1500)); await loadSummary(); if (view !== 'child' && view !== 'children') render(); } })();
  // Children: a long poll, answered as soon as a child is applied.
  (async function childLoop() {
    for (;;) {
      const live = summary && summary.run && summary.run.state === 'running';
      // The server answers at once when a child is new, else after up to 2 s;
      // then a pause of 1 s. A child shows within ~1 s of being applied,
      // and a headless browser's virtual clock (which stands still while a
      // request is pending) still moves a second per round.
      const grew = await loadChildren(live ? 2 : 0);
      if (grew && view !== 'child') render();
      await new Promise(r => setTimeout(r, live ? 1000 : 2000));
    }
  })();
}
boot();
