// Deadline-aware admission through HTTP: a request that cannot finish before its deadline
// (body `timeout` or header X-Request-Timeout) is refused at once with 503 + Retry-After in the
// OpenAI error shape; a client over its share gets 429 while another client still gets in;
// /health answers 503 while draining and in-flight requests still finish; the metrics exist.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertErrorShape, post, sseData, startServer } from './server_util.mjs';

const warm = async (url) => {
  // Teaches the predictor the machine's speed (prefill and decode steps).
  const r = await post(`${url}/v1/completions`, { prompt: 'warm up the predictor', max_tokens: 16 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
};

const expectRefusal = (r, status, code) => {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assertErrorShape(assert, r.body, status);
  assert.equal(r.body.error.code, code);
  assert.match(r.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
};

test('503 + Retry-After when the deadline cannot be met; bad timeouts are 400', async () => {
  const server = await startServer();
  try {
    await warm(server.url);
    const body = { prompt: 'hello', max_tokens: 200 };
    expectRefusal(await post(`${server.url}/v1/completions`, { ...body, timeout: 0.001 }), 503, 'deadline');
    expectRefusal(await post(`${server.url}/v1/completions`, body, { 'X-Request-Timeout': '0.001' }), 503, 'deadline');
    // A generous deadline is admitted; the smaller of field and header wins.
    assert.equal((await post(`${server.url}/v1/completions`, { ...body, max_tokens: 4, timeout: 60 })).status, 200);
    expectRefusal(await post(`${server.url}/v1/completions`, { ...body, timeout: 60 },
      { 'X-Request-Timeout': '0.001' }), 503, 'deadline');
    for (const timeout of [0, -1, 1e-300, 0.0009, 'soon', [1]]) {
      const r = await post(`${server.url}/v1/completions`, { ...body, timeout });
      assert.equal(r.status, 400, JSON.stringify(timeout));
      assert.equal(r.body.error.param, 'timeout');
    }
    for (const value of ['abc', '1e-300', '0']) {
      const h = await post(`${server.url}/v1/completions`, body, { 'X-Request-Timeout': value });
      assert.equal(h.status, 400, value);
      assertErrorShape(assert, h.body, 400);
    }

    // Refused before its grammar is compiled (a new schema can take a second to compile): the
    // grammar cache saw no request, and a schema that cannot compile is refused, not a 400.
    const schema = { type: 'object', properties: { a: { type: 'string', pattern: '(' } } };
    expectRefusal(await post(`${server.url}/v1/completions`, { ...body, timeout: 0.001,
      response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }), 503, 'deadline');

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /tinyserve:structured_grammar_cache_misses_total\{[^}]*\} 0\n/);
    assert.match(metrics, /tinyserve:structured_grammar_errors_total\{[^}]*\} 0\n/);
    for (const name of ['tinyserve:predicted_wait_seconds', 'tinyserve:admission_admitted_total',
      'tinyserve:admission_refused_total{model_name="dummy:tiny",reason="deadline"} 4',
      'tinyserve:admission_predicted_wait_seconds_sum', 'tinyserve:admission_actual_wait_seconds_count',
      'tinyserve:prefill_tokens_per_second', 'tinyserve:decode_step_seconds', 'tinyserve:max_step_ms',
      'tinyserve:budgeted_steps_total', 'tinyserve:budgeted_steps_over_total'])
      assert.ok(metrics.includes(name), name);
    // The same schema with a deadline that can be met: compiled, and refused for what it is.
    const bad = await post(`${server.url}/v1/completions`, { ...body, max_tokens: 4, timeout: 60,
      response_format: { type: 'json_schema', json_schema: { name: 's', schema } } });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
  } finally {
    assert.equal((await server.stop()).code, 0, server.log());
  }
});

test('429 for the client over its share, while another client still gets in', async () => {
  // One sequence at a time, so queued work adds up predictably.
  const server = await startServer(['--max-num-seqs', '1']);
  const hogs = new AbortController();
  try {
    await warm(server.url);
    // The hog's deadline is sized from the decode step the server measured, so that about six
    // of its requests fit one after another on any machine, fast or loaded.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const step = Number(metrics.match(/^tinyserve:decode_step_seconds(?:\{[^}]*\})? (\S+)$/m)?.[1]);
    assert.ok(step > 0, 'the warm-up measured no decode step');
    const timeout = Math.max(0.2, 6 * 200 * step);
    const hog = { prompt: 'x', max_tokens: 200, ignore_eos: true, user: 'hog', timeout, stream: true };
    // Twelve at once: about six fit the deadline one after another, the rest only would if
    // the hog had not queued the first ones. Refusals answer at once; admitted ones answer
    // when they start, or with 503 "shed" when the steps ahead of them ran slower than
    // predicted (on a loaded machine that 503 can come first; it is not this test's point).
    const sent = Array.from({ length: 12 }, () => fetch(`${server.url}/v1/completions`, {
      method: 'POST', body: JSON.stringify(hog), headers: { 'content-type': 'application/json' },
      signal: hogs.signal,
    }));
    for (const p of sent) p.catch(() => {});  // the admitted ones end with the abort below
    const over = await Promise.any(sent.map((p) => p.then((r) => (r.status === 429 ? r : Promise.reject(r.status)))))
      .catch((e) => assert.fail(`the hog was never refused with 429; statuses: ${e.errors}`));
    expectRefusal({ status: over.status, headers: over.headers, body: await over.json() }, 429, 'client_share');
    // Another client's request goes ahead of the hog's backlog.
    const light = await post(`${server.url}/v1/completions`,
      { prompt: 'y', max_tokens: 2, user: 'light', timeout: 20, stream: true });
    assert.equal(light.status, 200, JSON.stringify(light.body));
    assert.equal(sseData(light.body).at(-1), '[DONE]');
  } finally {
    hogs.abort();
    assert.equal((await server.stop()).code, 0, server.log());
  }
});

test('/health is 503 while draining; the in-flight stream still completes', async () => {
  // A 4,096-token context: the stream below (~0.5-2 s of the tiny model) outlasts the polls.
  const server = await startServer(['--shutdown-timeout', '30', '--max-model-len', '4096']);
  await warm(server.url);
  // The response head comes with the first event: once fetch resolves, the request runs.
  const resp = await fetch(`${server.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'z', max_tokens: 4000, ignore_eos: true, stream: true }),
  });
  assert.equal(resp.status, 200);
  server.proc.kill('SIGTERM');
  let health = 0;
  for (const deadline = Date.now() + 10_000; health !== 503 && Date.now() < deadline;) {
    health = (await fetch(`${server.url}/health`).catch(() => ({ status: -1 }))).status;
  }
  assert.equal(health, 503);
  assert.equal(sseData(await resp.text()).at(-1), '[DONE]');
  assert.equal((await server.exited).code, 0, server.log());
});
