// ctest: no_asan (hundreds of generations; the ASan run covers the server through the other tests)
// `tinyserve serve` under load: 64 parallel streams with exact usage, 200 clients that vanish at
// random points leave no KV blocks behind, graceful shutdown drains in-flight requests, and
// /metrics passes a strict Prometheus text-format parser.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { post, sleep, sseData, startServer } from './server_util.mjs';

// Strict parser of the Prometheus text exposition format (0.0.4). Returns {families: Map name ->
// {type, samples: [{name, labels, value}]}}; throws on any violation.
function parsePrometheus(text) {
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const families = new Map();
  const closed = new Set();
  let current = null;
  const familyOf = (name, type) => {
    if (type === 'histogram' || type === 'summary') return name.replace(/_(bucket|sum|count)$/, '');
    return name;
  };
  assert.ok(text.endsWith('\n'), 'must end with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue;  // other comments are allowed
      assert.match(m[2], NAME, line);
      const fam = families.get(m[2]) ?? { type: 'untyped', samples: [], help: false, typed: false };
      if (m[1] === 'TYPE') {
        assert.ok(!fam.typed, `second TYPE: ${line}`);
        assert.equal(fam.samples.length, 0, `TYPE after samples: ${line}`);
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]), line);
        fam.type = m[3];
        fam.typed = true;
      } else {
        assert.ok(!fam.help, `second HELP: ${line}`);
        fam.help = true;
      }
      families.set(m[2], fam);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    assert.ok(m, `bad sample line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[3] !== undefined && m[3] !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let pos = 0;
      while (pos < m[3].length) {
        re.lastIndex = pos;
        const l = re.exec(m[3]);
        assert.ok(l, `bad labels: ${line}`);
        assert.ok(!(l[1] in labels), `duplicate label: ${line}`);
        labels[l[1]] = l[2];
        pos = re.lastIndex;
      }
    }
    assert.ok(/^([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)$/.test(m[4]), `bad value: ${line}`);
    const value = m[4].endsWith('Inf') ? (m[4].startsWith('-') ? -Infinity : Infinity) : Number(m[4]);
    let famName = m[1];
    for (const [n, f] of families) if (familyOf(m[1], f.type) === n) famName = n;
    const fam = families.get(famName);
    assert.ok(fam, `sample without HELP/TYPE: ${line}`);
    if (current !== famName) {
      assert.ok(!closed.has(famName), `family ${famName} is not contiguous`);
      if (current) closed.add(current);
      current = famName;
    }
    if (fam.type === 'counter') assert.ok(value >= 0, line);
    fam.samples.push({ name: m[1], labels, value });
  }
  for (const [name, fam] of families) {
    if (fam.type !== 'histogram') continue;
    const series = new Map();
    for (const s of fam.samples) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      const entry = series.get(key) ?? { buckets: [], sum: null, count: null };
      if (s.name === `${name}_bucket`) entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
      else if (s.name === `${name}_sum`) entry.sum = s.value;
      else if (s.name === `${name}_count`) entry.count = s.value;
      else assert.fail(`histogram ${name} has sample ${s.name}`);
      series.set(key, entry);
    }
    for (const e of series.values()) {
      assert.ok(e.buckets.length > 0 && e.sum !== null && e.count !== null, `${name}: incomplete`);
      for (let i = 1; i < e.buckets.length; ++i) {
        assert.ok(e.buckets[i][0] > e.buckets[i - 1][0], `${name}: le not increasing`);
        assert.ok(e.buckets[i][1] >= e.buckets[i - 1][1], `${name}: buckets not cumulative`);
      }
      assert.equal(e.buckets.at(-1)[0], Infinity, `${name}: no +Inf bucket`);
      assert.equal(e.buckets.at(-1)[1], e.count, `${name}: +Inf bucket != count`);
    }
  }
  return families;
}

async function metrics(url) {
  const r = await fetch(`${url}/metrics`);
  assert.equal(r.status, 200);
  return parsePrometheus(await r.text());
}
const gauge = (fams, name) => fams.get(name).samples[0].value;

async function streamCompletion(url, body, signal) {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }), signal,
  });
  assert.equal(r.status, 200);
  const data = sseData(await r.text());
  assert.equal(data.at(-1), '[DONE]');
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

test('64 parallel streaming clients all complete with exact usage; metrics parse strictly', async () => {
  const server = await startServer(['--max-num-seqs', '16']);
  try {
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) =>
      streamCompletion(server.url, { prompt: `client ${i} says`, max_tokens: 8, ignore_eos: true })));
    for (const chunks of results) {
      const usage = chunks.at(-1).usage;
      assert.equal(usage.completion_tokens, 8);
      assert.equal(usage.total_tokens, usage.prompt_tokens + 8);
      assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
    }
    const fams = await metrics(server.url);
    for (const name of ['tinyserve:num_requests_running', 'tinyserve:num_requests_waiting',
      'tinyserve:kv_cache_usage_perc', 'tinyserve:prompt_tokens_total', 'tinyserve:generation_tokens_total',
      'tinyserve:request_success_total', 'tinyserve:num_preemptions_total', 'tinyserve:prefix_cache_queries_total',
      'tinyserve:prefix_cache_hits_total', 'tinyserve:time_to_first_token_seconds',
      'tinyserve:inter_token_latency_seconds', 'tinyserve:e2e_request_latency_seconds',
      'tinyserve:request_queue_time_seconds', 'process_resident_memory_bytes']) {
      assert.ok(fams.has(name), `missing ${name}`);
    }
    assert.ok(gauge(fams, 'tinyserve:generation_tokens_total') >= 64 * 8);
    const e2e = fams.get('tinyserve:e2e_request_latency_seconds').samples.find((s) => s.name.endsWith('_count'));
    assert.ok(e2e.value >= 64);
    // Each response is counted before its first byte leaves, so all 64 are here already.
    const ok = fams.get('tinyserve:http_requests_total').samples.find((s) => s.labels.status === '200');
    assert.ok(ok.value >= 64, `http_requests_total{status="200"} = ${ok.value}`);
  } finally {
    assert.equal((await server.stop()).code, 0, server.log());
  }
});

test('200 clients vanishing at random points free every KV block; the server stays healthy', async () => {
  const server = await startServer(['--max-num-seqs', '8', '--max-queue-len', '256']);
  try {
    let seed = 12345;
    const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    const clients = Array.from({ length: 200 }, (_, i) => {
      const controller = new AbortController();
      const stream = i % 2 === 0;
      setTimeout(() => controller.abort(), Math.floor(rand() * 1500));
      return fetch(`${server.url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: controller.signal,
        body: JSON.stringify({ prompt: `request ${i}`, max_tokens: 400, ignore_eos: true, stream }),
      }).then((r) => r.text()).catch(() => null);
    });
    await Promise.all(clients);
    const deadline = Date.now() + 30_000;
    let fams;
    for (;;) {
      fams = await metrics(server.url);
      if (gauge(fams, 'tinyserve:kv_cache_usage_perc') === 0 && gauge(fams, 'tinyserve:num_requests_running') === 0 &&
          gauge(fams, 'tinyserve:num_requests_waiting') === 0) break;
      assert.ok(Date.now() < deadline, `KV cache still in use: ${gauge(fams, 'tinyserve:kv_cache_usage_perc')}`);
      await sleep(200);
    }
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    const ok = await post(`${server.url}/v1/completions`, { prompt: 'still alive', max_tokens: 3 });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.usage.completion_tokens, 3);
  } finally {
    assert.equal((await server.stop()).code, 0, server.log());
  }
});

test('SIGTERM drains in-flight requests, refuses new ones with 503, exits 0', async () => {
  // The drain may take a minute under ThreadSanitizer (scripts/tsan_server.sh runs this file).
  const server = await startServer(['--max-num-seqs', '4', '--shutdown-timeout', '300',
    '--max-model-len', '4096']);
  // Long enough (0.3 s or more of the tiny model, a fast machine's release build included) that
  // the three are still running when the refusal is checked below.
  const body = { prompt: 'drain me', max_tokens: 1000, ignore_eos: true };
  const inflight = Array.from({ length: 3 }, () => streamCompletion(server.url, body));
  // Wait until all three run, then signal.
  for (const deadline = Date.now() + 30_000; ;) {
    const fams = await metrics(server.url);
    if (gauge(fams, 'tinyserve:num_requests_running') >= 3) break;
    assert.ok(Date.now() < deadline, 'requests never started');
    await sleep(20);
  }
  server.proc.kill('SIGTERM');
  // Draining once /health says so (the signal is handled asynchronously).
  for (const deadline = Date.now() + 30_000; (await fetch(`${server.url}/health`)).status !== 503;) {
    assert.ok(Date.now() < deadline, '/health never reported draining');
    await sleep(5);
  }
  const refused = await post(`${server.url}/v1/completions`, body).catch((e) => ({ status: `error ${e}` }));
  assert.equal(refused.status, 503);
  for (const chunks of await Promise.all(inflight)) {
    assert.equal(chunks.at(-1).usage.completion_tokens, 1000);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
  }
  const { code } = await server.exited;
  assert.equal(code, 0, server.log());
});
