// The bench report page: builds the tables and interactive SVG charts of report.html from the
// JSON in <script id="ts-data">. One run ("run") or several overlaid ("compare"). No network,
// no libraries. Embedded into the binary at build time (see CMakeLists.txt).
'use strict';

const DATA = JSON.parse(document.getElementById('ts-data').textContent);
const RUNS = DATA.runs;
const COMPARE = DATA.kind === 'compare';
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
  '#17becf', '#7f7f7f', '#bcbd22'];
const DASHES = ['', '6 3', '2 3', '10 3 2 3'];
const SVGNS = 'http://www.w3.org/2000/svg';

// ---- formatting: human units, thousands separators -------------------------------------------
function num(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return 'n/a';
  return Number(v).toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: 0});
}
function ms(v) {
  if (v === null || v === undefined || !isFinite(v)) return 'n/a';
  if (Math.abs(v) >= 1000) return num(v / 1000, Math.abs(v) >= 10000 ? 1 : 2) + ' s';
  return num(v, Math.abs(v) < 10 ? 1 : 0) + ' ms';
}
function pct(f, digits) { return (f === null || f === undefined || !isFinite(f)) ? 'n/a' : num(f * 100, digits === undefined ? 1 : digits) + '%'; }
function secs(v) {
  if (!isFinite(v)) return 'n/a';
  if (Math.abs(v) >= 120) return num(v / 60, 1) + ' min';
  return num(v, Math.abs(v) < 10 ? 1 : 0) + ' s';
}
function bytes(v) { return (v === null || v < 0) ? 'n/a' : num(v / 1e9, 2) + ' GB'; }
// Formats a value of a chart's unit for its axis and tooltips.
function fmtUnit(unit, v, axisMax) {
  switch (unit) {
    case 'ms': return (axisMax !== undefined && axisMax >= 2000) ? num(v / 1000, v % 1000 ? 1 : 0) + ' s' : ms(v);
    case '%': return num(v, 1) + '%';
    case 's': return secs(v);
    case 'rps': return num(v, v < 10 ? 2 : 1);
    default: return num(v, 2);
  }
}
function loadLabel(l) { return l.request_rate > 0 ? num(l.request_rate, 2) + ' req/s' : num(l.users, 0); }
function loadX(l) { return l.request_rate > 0 ? l.request_rate : l.users; }
function openLoop(run) { return run.levels.length > 0 && run.levels[0].request_rate > 0; }
function reportable(n, q) { return n * (1 - q) >= 1 - 1e-9; }
function minSamples(q) { return Math.ceil(1 / (1 - q) - 1e-9); }
function ciText(ci, f) { return (ci && ci[0] !== null && ci[1] !== null) ? ' [' + f(ci[0]) + ' – ' + f(ci[1]) + ']' : ''; }
// A percentile cell: the value and its interval, or "too few" when n is below the rule.
function pctl(d, key, q) {
  if (!d || d.n === 0) return '–';
  if (!reportable(d.n, q)) return 'too few (n=' + d.n + ')';
  return ms(d[key]) + ciText(d[key + '_ci'], ms);
}
function detailIndex(run) {
  let best = 0;
  run.levels.forEach((l, i) => {
    if (Math.abs(l.users - run.info.detail_users) < Math.abs(run.levels[best].users - run.info.detail_users)) best = i;
  });
  return best;
}

// ---- DOM helpers -------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function table(head, rows, cls) {
  const t = el('table', cls ? {class: cls} : {});
  t.append(el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))));
  const body = el('tbody', {});
  for (const r of rows) body.append(el('tr', {}, ...r.map((c) => el('td', {}, c))));
  t.append(body);
  return t;
}
// Markdown-ish "**bold**" from the report's sentences.
function richText(s) {
  const p = el('p', {});
  s.split('**').forEach((part, i) => p.append(i % 2 ? el('strong', {}, part) : document.createTextNode(part)));
  return p;
}
const main = document.getElementById('main');
function section(title, id) {
  const s = el('section', {id: id});
  s.append(el('h2', {}, title));
  main.append(s);
  return s;
}

// ---- charts ------------------------------------------------------------------------------------
function niceTicks(lo, hi, target) {
  const span = hi - lo || 1;
  const mag = Math.pow(10, Math.floor(Math.log10(span / target)));
  let step = mag;
  for (const m of [1, 2, 5, 10]) { step = m * mag; if (span / step <= target) break; }
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

// spec: {id, title, xLabel, xUnit, yLabel, yUnit, logX, scatter, vlines: [x], series: [{name,
// color, dash, points: [[x, y, lo, hi]]}]}. Points with y === null are skipped. Legend entries toggle series;
// hovering shows the nearest point's values.
function chart(parent, spec) {
  const W = 760, H = 330, L = 78, R = 16, T = 34, B = 46;
  const pw = W - L - R, ph = H - T - B;
  const box = el('div', {class: 'chart', id: spec.id, 'data-series': spec.series.length});
  const svg = svgEl('svg', {viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': spec.title});
  box.append(svg);
  const legend = el('div', {class: 'legend'});
  box.append(legend);
  const tip = el('div', {class: 'tip'});
  box.append(tip);
  parent.append(box);
  const hidden = new Set();
  const tx = (x) => spec.logX ? Math.log2(Math.max(x, 1e-9)) : x;

  function draw() {
    svg.replaceChildren();
    const vis = spec.series.filter((s) => !hidden.has(s.name));
    let xlo = Infinity, xhi = -Infinity, yhi = 0;
    for (const s of vis) for (const p of s.points) {
      if (p[1] === null || !isFinite(p[0]) || !isFinite(p[1])) continue;
      xlo = Math.min(xlo, tx(p[0])); xhi = Math.max(xhi, tx(p[0]));
      yhi = Math.max(yhi, p[1], (p[3] !== undefined && p[3] !== null) ? p[3] : 0);
    }
    if (!isFinite(xlo)) { xlo = 0; xhi = 1; }
    if (xhi <= xlo) { xlo -= 0.5; xhi += 0.5; }
    if (yhi <= 0) yhi = 1;
    const yt = niceTicks(0, yhi * 1.05, 5);
    const ytop = Math.max(yhi * 1.05, yt[yt.length - 1]);
    const px = (x) => L + (tx(x) - xlo) / (xhi - xlo) * pw;
    const py = (y) => T + ph - y / ytop * ph;
    svg.append(svgEl('rect', {width: W, height: H, fill: '#fff'}));
    const title = svgEl('text', {x: L + pw / 2, y: 20, 'text-anchor': 'middle', class: 'ctitle'});
    title.textContent = spec.title;
    svg.append(title);
    for (const t of yt) {
      svg.append(svgEl('line', {x1: L, x2: L + pw, y1: py(t), y2: py(t), stroke: '#e5e5e5'}));
      const lab = svgEl('text', {x: L - 6, y: py(t) + 4, 'text-anchor': 'end'});
      lab.textContent = fmtUnit(spec.yUnit, t, ytop);
      svg.append(lab);
    }
    let xt = [];
    if (spec.logX) { for (let e = Math.ceil(xlo); e <= xhi + 1e-9; e++) xt.push(Math.pow(2, e)); }
    else xt = niceTicks(xlo, xhi, 6);
    for (const t of xt) {
      const lab = svgEl('text', {x: px(t), y: T + ph + 17, 'text-anchor': 'middle'});
      lab.textContent = fmtUnit(spec.xUnit, t, spec.logX ? undefined : xhi);
      svg.append(lab);
    }
    svg.append(svgEl('line', {x1: L, x2: L, y1: T, y2: T + ph, stroke: '#333'}));
    svg.append(svgEl('line', {x1: L, x2: L + pw, y1: T + ph, y2: T + ph, stroke: '#333'}));
    const xl = svgEl('text', {x: L + pw / 2, y: H - 8, 'text-anchor': 'middle'});
    xl.textContent = spec.xLabel;
    svg.append(xl);
    const yl = svgEl('text', {x: 14, y: T + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${T + ph / 2})`});
    yl.textContent = spec.yLabel;
    svg.append(yl);
    for (const v of spec.vlines || []) {
      if (tx(v) < xlo || tx(v) > xhi) continue;
      svg.append(svgEl('line', {x1: px(v), x2: px(v), y1: T, y2: T + ph, stroke: '#999', 'stroke-dasharray': '4 3'}));
    }
    const hits = [];
    for (const s of vis) {
      const pts = s.points.filter((p) => p[1] !== null && isFinite(p[0]) && isFinite(p[1]));
      if (!spec.scatter && pts.length > 1) {
        svg.append(svgEl('polyline', {fill: 'none', stroke: s.color, 'stroke-width': 2,
          'stroke-dasharray': s.dash || '', points: pts.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' '), class: 'series'}));
      }
      for (const p of pts) {
        if (p[2] !== undefined && p[2] !== null && p[3] !== null) {
          svg.append(svgEl('line', {x1: px(p[0]), x2: px(p[0]), y1: py(p[2]), y2: py(p[3]), stroke: s.color, 'stroke-width': 1.2, opacity: 0.7}));
        }
        if (spec.scatter || pts.length <= 60) {
          svg.append(svgEl('circle', {cx: px(p[0]), cy: py(p[1]), r: spec.scatter ? 2.5 : 3, fill: s.color, opacity: spec.scatter ? 0.65 : 1}));
        }
        hits.push({s: s, p: p, x: px(p[0]), y: py(p[1])});
      }
    }
    const focus = svgEl('circle', {r: 6, fill: 'none', stroke: '#000', 'stroke-width': 1.5, visibility: 'hidden'});
    svg.append(focus);
    svg.onmousemove = (ev) => {
      const r = svg.getBoundingClientRect();
      const mx = (ev.clientX - r.left) * W / r.width, my = (ev.clientY - r.top) * H / r.height;
      let best = null, bd = 30 * 30;
      for (const h of hits) { const d = (h.x - mx) ** 2 + (h.y - my) ** 2; if (d < bd) { bd = d; best = h; } }
      if (!best) { focus.setAttribute('visibility', 'hidden'); tip.style.display = 'none'; return; }
      focus.setAttribute('cx', best.x); focus.setAttribute('cy', best.y); focus.setAttribute('visibility', 'visible');
      const p = best.p;
      tip.textContent = `${best.s.name}: ${spec.xLabel} ${fmtUnit(spec.xUnit, p[0])} → ${fmtUnit(spec.yUnit, p[1])}` +
        ((p[2] !== undefined && p[2] !== null && p[3] !== null) ? ` (95% CI ${fmtUnit(spec.yUnit, p[2])} – ${fmtUnit(spec.yUnit, p[3])})` : '');
      tip.style.display = 'block';
      tip.style.left = Math.min(best.x * r.width / W + 12, r.width - 260) + 'px';
      tip.style.top = (best.y * r.height / H + 10) + 'px';
    };
    svg.onmouseleave = () => { focus.setAttribute('visibility', 'hidden'); tip.style.display = 'none'; };
  }
  for (const s of spec.series) {
    const item = el('span', {class: 'item', title: 'click to show or hide'});
    const sw = svgEl('svg', {width: 26, height: 10});
    sw.append(svgEl('line', {x1: 0, x2: 26, y1: 5, y2: 5, stroke: s.color, 'stroke-width': 3, 'stroke-dasharray': s.dash || ''}));
    item.append(sw, document.createTextNode(' ' + s.name));
    item.onclick = () => { if (hidden.has(s.name)) hidden.delete(s.name); else hidden.add(s.name); item.classList.toggle('off'); draw(); };
    legend.append(item);
  }
  draw();
  return box;
}

// Series name: the run's label in a comparison, plus what it shows.
function sname(ri, what) { return COMPARE ? (what ? RUNS[ri].label + ' · ' + what : RUNS[ri].label) : what; }
function ci(c) { return c ? [c[0], c[1]] : [null, null]; }

function loadCharts(parent) {
  const ol = openLoop(RUNS[0]);
  const xLabel = ol ? 'offered load (requests/s)' : 'concurrent users';
  const base = {xLabel: xLabel, xUnit: ol ? 'rps' : 'n', logX: !ol};
  const rps = [], ttft = [], e2e = [], itl = [], fail = [], slo = [];
  RUNS.forEach((run, ri) => {
    const c = COLORS[ri % COLORS.length];
    const cs = (i) => COMPARE ? c : COLORS[i % COLORS.length];
    const lv = run.levels;
    rps.push({name: sname(ri, 'RPS'), color: cs(0), points: lv.map((l) => [loadX(l), l.rps, ...ci(l.rps_ci)])});
    rps.push({name: sname(ri, 'goodput'), color: cs(1), dash: DASHES[1], points: lv.map((l) => [loadX(l), l.goodput_rps, ...ci(l.goodput_ci)])});
    [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]].forEach(([k, q], qi) => {
      const pts = (d) => lv.map((l) => [loadX(l), (l[d].n > 0 && reportable(l[d].n, q)) ? l[d][k] : null, ...ci(l[d][k + '_ci'])]);
      ttft.push({name: sname(ri, 'TTFT ' + k), color: cs(qi), dash: COMPARE ? DASHES[qi] : '', points: pts('ttft_ms')});
      e2e.push({name: sname(ri, 'E2E ' + k), color: cs(qi), dash: COMPARE ? DASHES[qi] : '', points: pts('e2e_ms')});
      itl.push({name: sname(ri, 'ITL ' + k), color: cs(qi), dash: COMPARE ? DASHES[qi] : '', points: pts('itl_ms')});
    });
    fail.push({name: sname(ri, 'failures'), color: COMPARE ? c : COLORS[1], points: lv.map((l) => [loadX(l), l.failure_rate * 100])});
    slo.push({name: sname(ri, 'SLO met'), color: COMPARE ? c : COLORS[2],
      points: lv.map((l) => [loadX(l), l.slo_attainment * 100, ...(l.slo_attainment_ci ? [l.slo_attainment_ci[0] * 100, l.slo_attainment_ci[1] * 100] : [null, null])])});
  });
  chart(parent, {...base, id: 'chart-rps', title: 'Throughput: RPS and goodput (95% CI bars)', yLabel: 'requests/s', yUnit: 'rps', series: rps});
  chart(parent, {...base, id: 'chart-ttft', title: 'Time to first token percentiles', yLabel: 'TTFT', yUnit: 'ms', series: ttft});
  chart(parent, {...base, id: 'chart-e2e', title: 'End-to-end latency percentiles', yLabel: 'E2E latency', yUnit: 'ms', series: e2e});
  chart(parent, {...base, id: 'chart-itl', title: 'Inter-token latency percentiles', yLabel: 'ITL', yUnit: 'ms', series: itl});
  chart(parent, {...base, id: 'chart-slo', title: 'SLO attainment (share of requests meeting every SLO)', yLabel: '% of requests', yUnit: '%', series: slo});
  chart(parent, {...base, id: 'chart-failures', title: 'Failure rate', yLabel: '% of requests', yUnit: '%', series: fail});
}

function ttftByTaskChart(parent) {
  const series = [];
  RUNS.forEach((run, ri) => {
    if (!run.levels.length) return;
    const l = run.levels[detailIndex(run)];
    Object.entries(l.ttft_by_task || {}).forEach(([task, vals], ti) => {
      series.push({name: sname(ri, task) + (COMPARE ? ' @' + loadLabel(l) : ''), color: COMPARE ? COLORS[ri % COLORS.length] : COLORS[ti % COLORS.length],
        dash: COMPARE ? DASHES[ti % DASHES.length] : '', points: vals.map((v, k) => [v, 100 * (k + 1) / vals.length])});
    });
  });
  const l0 = RUNS[0].levels.length ? RUNS[0].levels[detailIndex(RUNS[0])] : null;
  chart(parent, {id: 'chart-ttft-tasks', title: 'TTFT distribution per task' + (l0 && !COMPARE ? ' at ' + loadLabel(l0) + (l0.request_rate > 0 ? '' : ' users') : ' (each run at its detail level)'),
    xLabel: 'TTFT', xUnit: 'ms', yLabel: '% of requests at or below', yUnit: '%', series: series});
}

// Latency of each request against its start time within one level, with a level selector.
function timelineChart(parent) {
  const loads = [...new Set(RUNS.flatMap((r) => r.levels.map(loadLabel)))];
  const pick = el('select', {id: 'timeline-level'});
  loads.forEach((lab) => pick.append(el('option', {value: lab}, lab)));
  const holder = el('div', {});
  parent.append(el('p', {}, 'Level: ', pick, ' — each dot is a request at its start time; the grey line is the end of the warm-up.'), holder);
  function render() {
    holder.replaceChildren();
    const series = [];
    RUNS.forEach((run, ri) => {
      const l = run.levels.find((x) => loadLabel(x) === pick.value);
      if (!l) return;
      const tl = l.timeline || [];
      const c = (i) => COMPARE ? COLORS[ri % COLORS.length] : COLORS[i];
      series.push({name: sname(ri, 'TTFT'), color: c(0), points: tl.filter((r) => r[3] && r[1] !== null).map((r) => [r[0], r[1]])});
      series.push({name: sname(ri, 'E2E'), color: c(2), points: tl.filter((r) => r[3]).map((r) => [r[0], r[2]])});
      series.push({name: sname(ri, 'failed (E2E)'), color: COMPARE ? c(0) : COLORS[1], points: tl.filter((r) => !r[3]).map((r) => [r[0], r[2]])});
    });
    chart(holder, {id: 'chart-timeline', title: 'Latency over time within the level', xLabel: 'request start (s into the level)', xUnit: 's',
      yLabel: 'latency', yUnit: 'ms', scatter: true, series: series, vlines: [...new Set(RUNS.map((r) => r.info.warmup_s).filter((w) => w > 0))]});
  }
  pick.onchange = render;
  render();
}

// Server gauges over the whole run: levels placed one after another.
function serverCharts(parent) {
  const queue = [], kv = [];
  let any = false;
  RUNS.forEach((run, ri) => {
    let offset = 0;
    const running = [], waiting = [], kvu = [];
    for (const l of run.levels) {
      for (const s of l.server_samples || []) {
        const t = offset + s.t_s;
        if (s.running !== null && s.running >= 0) { running.push([t, s.running]); any = true; }
        if (s.waiting !== null && s.waiting >= 0) { waiting.push([t, s.waiting]); any = true; }
        if (s.kv_usage !== null && s.kv_usage >= 0) { kvu.push([t, s.kv_usage * 100]); any = true; }
      }
      offset += l.wall_s || 0;
    }
    const c = (i) => COMPARE ? COLORS[ri % COLORS.length] : COLORS[i];
    queue.push({name: sname(ri, 'running'), color: c(0), points: running});
    queue.push({name: sname(ri, 'waiting'), color: c(1), dash: DASHES[1], points: waiting});
    kv.push({name: sname(ri, 'KV cache in use'), color: c(2), points: kvu});
  });
  if (!any) { parent.append(el('p', {}, 'The server exported no queue or KV-cache gauges at /metrics.')); }
  chart(parent, {id: 'chart-queue', title: 'Server queue over the run (levels back to back)', xLabel: 'time into the run', xUnit: 's', yLabel: 'requests', yUnit: 'n', series: queue});
  chart(parent, {id: 'chart-kv', title: 'KV-cache use over the run', xLabel: 'time into the run', xUnit: 's', yLabel: '% of blocks', yUnit: '%', series: kv});
}

// ---- tables ------------------------------------------------------------------------------------
function factsTable(run) {
  const i = run.info;
  const rows = [['tinyserve', i.tinyserve_version], ['model', i.model],
    ['server', (i.embedded_server ? 'embedded ' : 'external ') + i.base_url + ' (' + i.endpoint + ')'],
    ['machine', i.cpu_model + ', ' + i.cores + ' cores; server threads ' + (i.server_threads > 0 ? i.server_threads : 'unknown')],
    ['profile / workload', i.profile + ' / ' + i.workload],
    ['per level', 'warm-up ' + secs(i.warmup_s) + ', measured ' + secs(i.duration_s) + '; think time ' + i.think_time_s.join('–') + ' s; timeout ' + secs(i.timeout_s) + '; seed ' + i.seed],
    ['SLO', 'TTFT ≤ ' + ms(i.slo.ttft_ms) + ', E2E ≤ ' + ms(i.slo.e2e_ms) + ' (0 = none)'],
    ['started', i.started_at], ['command', i.command_line]];
  if (run.sweep) rows.push(['sweep', run.sweep.summary]);
  if (run.server_warmup) rows.push(['server warm-up', run.server_warmup.summary]);
  return table(['', run.label || ''], rows, 'facts');
}
function capacityTable(run) {
  return table([openLoop(run) ? 'rate' : 'users', 'RPS', 'mean TTFT (ms)', 'mean E2E (ms)', 'memory (GB)', 'failures', 'SLOs hold'],
    run.levels.map((l) => [loadLabel(l), num(l.rps, 2), num(l.ttft_ms.mean, 0), num(l.e2e_ms.mean, 0),
      l.server.rss_max_bytes < 0 ? 'n/a' : num(l.server.rss_max_bytes / 1e9, 2), pct(l.failure_rate), l.holds ? 'yes' : 'no']));
}
function fixed(v, d) {
  return (v === null || v === undefined || !isFinite(v)) ? 'n/a' : Number(v).toLocaleString('en-US', {maximumFractionDigits: d, minimumFractionDigits: d});
}
function rateTable(run) {
  return table([openLoop(run) ? 'rate' : 'users', 'requests', 'RPS [95% CI]', 'goodput RPS [95% CI]', 'SLO met [95% CI]',
    'output tok/s', 'TPOT mean', 'in flight mean / max'],
  run.levels.map((l) => [loadLabel(l), num(l.num_requests, 0), fixed(l.rps, 2) + ciText(l.rps_ci, (v) => fixed(v, 2)),
    fixed(l.goodput_rps, 2) + ciText(l.goodput_ci, (v) => fixed(v, 2)), pct(l.slo_attainment) + ciText(l.slo_attainment_ci, pct),
    num(l.output_tokens_per_s, 1), ms(l.tpot_ms.mean), num(l.mean_in_flight, 2) + ' / ' + l.max_in_flight]));
}
function percentileTable(run) {
  return table([openLoop(run) ? 'rate' : 'users', 'TTFT p50', 'TTFT p90', 'TTFT p99', 'E2E p50', 'E2E p90', 'E2E p99', 'ITL p50', 'ITL p99'],
    run.levels.map((l) => [loadLabel(l), pctl(l.ttft_ms, 'p50', 0.5), pctl(l.ttft_ms, 'p90', 0.9), pctl(l.ttft_ms, 'p99', 0.99),
      pctl(l.e2e_ms, 'p50', 0.5), pctl(l.e2e_ms, 'p90', 0.9), pctl(l.e2e_ms, 'p99', 0.99),
      pctl(l.itl_ms, 'p50', 0.5), pctl(l.itl_ms, 'p99', 0.99)]), 'compact');
}
function taskTable(run) {
  const l = run.levels[detailIndex(run)];
  return [el('p', {}, 'At ' + loadLabel(l) + (l.request_rate > 0 ? '' : ' users') + ':'),
    table(['task', 'requests', 'mean E2E ± std', 'mean TTFT ± std', 'p90 E2E', 'failures'],
      l.tasks.map((t) => [t.task, num(t.requests, 0), t.e2e_ms.n ? ms(t.e2e_ms.mean) + ' ± ' + ms(t.e2e_ms.std) : '–',
        t.ttft_ms.n ? ms(t.ttft_ms.mean) + ' ± ' + ms(t.ttft_ms.std) : '–', pctl(t.e2e_ms, 'p90', 0.9),
        t.requests ? pct(t.failures / t.requests) : '–']))];
}
function serverTable(run) {
  const o = (v, f) => (v === null || v < 0) ? 'n/a' : f(v);
  return table([openLoop(run) ? 'rate' : 'users', 'samples', 'peak memory', 'KV use mean / max', 'running mean', 'waiting mean / max', 'preemptions'],
    run.levels.map((l) => { const s = l.server; return [loadLabel(l), s.samples, bytes(s.rss_max_bytes),
      o(s.kv_usage_mean, pct) + ' / ' + o(s.kv_usage_max, pct), o(s.running_mean, (v) => num(v, 2)),
      o(s.waiting_mean, (v) => num(v, 2)) + ' / ' + o(s.waiting_max, (v) => num(v, 0)), o(s.preemptions, (v) => num(v, 0))]; }));
}
function failureTable(run) {
  const rows = run.levels.filter((l) => l.failures > 0).map((l) => [loadLabel(l), l.failures + ' of ' + l.requests,
    Object.entries(l.failures_by_cause).map(([c, n]) => c + ' ' + n).join(', ')]);
  return rows.length ? table(['load', 'failed', 'by cause'], rows) : el('p', {}, 'No request failed.');
}
function verdict(run) {
  const box = el('div', {class: 'verdict'});
  box.append(richText(run.knee_sentence || 'No knee sentence in this run.'));
  if (run.knee_uncertainty) box.append(el('p', {}, run.knee_uncertainty));
  if (run.sweep && run.sweep.saturation) box.append(richText(run.sweep.saturation));
  return box;
}

// Side by side: one table per measure, a column per run, ratios to the first run.
function sideBySide(parent) {
  const measures = [['RPS', (l) => l.rps, (v) => fixed(v, 2)], ['goodput RPS', (l) => l.goodput_rps, (v) => fixed(v, 2)],
    ['SLO met', (l) => l.slo_attainment, pct], ['TTFT p50', (l) => l.ttft_ms.n ? l.ttft_ms.p50 : null, ms],
    ['TTFT p99', (l) => reportable(l.ttft_ms.n, 0.99) ? l.ttft_ms.p99 : null, ms], ['E2E p50', (l) => l.e2e_ms.n ? l.e2e_ms.p50 : null, ms],
    ['E2E p99', (l) => reportable(l.e2e_ms.n, 0.99) ? l.e2e_ms.p99 : null, ms], ['ITL p50', (l) => l.itl_ms.n ? l.itl_ms.p50 : null, ms],
    ['output tok/s', (l) => l.output_tokens_per_s, (v) => num(v, 1)], ['failures', (l) => l.failure_rate, pct],
    ['peak memory', (l) => l.server.rss_max_bytes >= 0 ? l.server.rss_max_bytes : null, bytes]];
  const loads = [...new Set(RUNS.flatMap((r) => r.levels.map(loadX)))].sort((a, b) => a - b);
  parent.append(table(['run', 'knee', 'best RPS', 'best goodput'], RUNS.map((r) => [r.label,
    r.knee ? loadLabel(r.levels[r.knee.level]) + (openLoop(r) ? '' : ' users') : 'none', fixed(Math.max(0, ...r.levels.map((l) => l.rps)), 2),
    fixed(Math.max(0, ...r.levels.map((l) => l.goodput_rps)), 2)])));
  const grid = el('div', {class: 'grid'});
  parent.append(grid);
  for (const [name, get, f] of measures) {
    const cell = el('div', {class: 'cell'});
    grid.append(cell);
    cell.append(el('h3', {}, name));
    cell.append(table(['load', ...RUNS.map((r, i) => i ? r.label + ' (× ' + RUNS[0].label + ')' : r.label)], loads.map((x) => {
      const vals = RUNS.map((r) => { const l = r.levels.find((v) => loadX(v) === x); return l ? get(l) : undefined; });
      return [num(x, 2), ...vals.map((v, i) => {
        if (v === undefined) return 'not run';
        if (v === null) return 'too few';
        const b = vals[0];
        return f(v) + ((i && b !== undefined && b !== null && b !== 0) ? ' (×' + num(v / b, 2) + ')' : '');
      })];
    })));
  }
}

// ---- page --------------------------------------------------------------------------------------
function build() {
  document.title = DATA.title;
  main.append(el('h1', {}, DATA.title));
  if (COMPARE) {
    main.append(el('p', {class: 'runs'}, 'Runs: ', ...RUNS.flatMap((r, i) => [i ? ', ' : '', el('span', {class: 'run', style: 'color:' + COLORS[i % COLORS.length]}, r.label)])));
    const v = section('Verdicts', 'verdicts');
    RUNS.forEach((r) => { v.append(el('h3', {}, r.label)); v.append(verdict(r)); });
    sideBySide(section('Side by side (ratios to ' + RUNS[0].label + ')', 'side-by-side'));
  } else {
    const run = RUNS[0];
    section('Run', 'facts').append(factsTable(run));
    const cap = section('Capacity', 'capacity');
    cap.append(capacityTable(run), verdict(run));
    section('Rates (95% confidence intervals)', 'rates').append(rateTable(run));
    section('Latency percentiles (95% confidence intervals)', 'percentiles').append(percentileTable(run),
      el('p', {class: 'note'}, '"too few (n=…)": a percentile q is shown only when the level has at least 1/(1−q) successful requests (p50: 2, p90: 10, p99: 100). Rates have bootstrap intervals over 10 time windows, percentiles over requests, SLO attainment a Wilson interval.'));
  }
  loadCharts(section('Load', 'load-charts'));
  ttftByTaskChart(section('TTFT per task', 'task-charts'));
  timelineChart(section('Latency over time', 'timeline'));
  serverCharts(section('Server over time', 'server-charts'));
  if (COMPARE) {
    const d = section('Each run in full', 'runs-full');
    for (const run of RUNS) {
      const det = el('details', {});
      det.append(el('summary', {}, run.label), factsTable(run), capacityTable(run), verdict(run), rateTable(run), percentileTable(run),
        ...taskTable(run), serverTable(run), failureTable(run));
      d.append(det);
    }
  } else {
    const run = RUNS[0];
    section('Per task', 'tasks').append(...taskTable(run));
    section('Server (sampled during each level)', 'server').append(serverTable(run));
    section('Failures by cause', 'failures').append(failureTable(run));
  }
  document.body.setAttribute('data-charts', document.querySelectorAll('.chart svg').length);
  document.body.setAttribute('data-ready', '1');
}
build();
