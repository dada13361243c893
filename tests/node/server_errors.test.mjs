// One test per error status of `tinyserve serve` (400 per malformed body and out-of-range field,
// 401, 404, 405, 413, 503 + Retry-After on a full queue), every body in the OpenAI error shape.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { assertErrorShape, post, startServer, untilRunning } from './server_util.mjs';

let server;
before(async () => { server = await startServer(['--api-key', 'k1', '--max-request-bytes', '4096']); });
after(async () => { assert.equal((await server.stop()).code, 0, server.log()); });

const AUTH = { authorization: 'Bearer k1' };
const expectError = async (status, path, body, headers = AUTH) => {
  const r = await post(`${server.url}${path}`, body, headers);
  assert.equal(r.status, status, JSON.stringify(r.body));
  assertErrorShape(assert, r.body, status);
  return r;
};

test('400: malformed JSON and non-object bodies', async () => {
  for (const body of ['{', '{"prompt": "x",}', '[1]', 'null', ''])
    await expectError(400, '/v1/completions', body);
});

test('400: every out-of-range or mistyped field names itself as param', async () => {
  const cases = [
    [{ n: 0 }, 'n'], [{ n: 100 }, 'n'], [{ max_tokens: 0 }, 'max_tokens'],
    [{ temperature: -1 }, 'temperature'], [{ temperature: 3 }, 'temperature'],
    [{ top_p: 0 }, 'top_p'], [{ presence_penalty: 2.5 }, 'presence_penalty'],
    [{ frequency_penalty: -2.5 }, 'frequency_penalty'], [{ repetition_penalty: 0 }, 'repetition_penalty'],
    [{ logit_bias: { 99999999: 1 } }, 'logit_bias'], [{ logit_bias: { 5: 150 } }, 'logit_bias'],
    [{ logprobs: 21 }, 'logprobs'], [{ stop: Array(17).fill('a') }, 'stop'],
    [{ stop: 'x'.repeat(300) }, 'stop'], [{ n: 'two' }, 'n'], [{ stream: 1 }, 'stream'],
    [{ prompt: 5 }, 'prompt'],
  ];
  for (const [extra, param] of cases) {
    const r = await expectError(400, '/v1/completions', { prompt: 'hi', ...extra });
    assert.equal(r.body.error.param, param, JSON.stringify(extra));
  }
  const chat = await expectError(400, '/v1/chat/completions',
    { messages: [{ role: 'user', content: 'hi' }], logprobs: true, top_logprobs: 21 });
  assert.equal(chat.body.error.param, 'top_logprobs');
});

test('400: prompt + max_tokens beyond max_model_len names both numbers', async () => {
  const r = await expectError(400, '/v1/completions', { prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], max_tokens: 505 });
  assert.match(r.body.error.message, /512/);
  assert.match(r.body.error.message, /515/);
});

test('401: missing or wrong key on /v1, none needed on /health', async () => {
  await expectError(401, '/v1/completions', { prompt: 'x' }, {});
  await expectError(401, '/v1/completions', { prompt: 'x' }, { authorization: 'Bearer nope' });
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
});

test('404: unknown model and unknown route', async () => {
  const r = await expectError(404, '/v1/completions', { model: 'nope', prompt: 'x' });
  assert.equal(r.body.error.param, 'model');
  await expectError(404, '/v1/nothing', {});
  const g = await fetch(`${server.url}/nothing`);
  assert.equal(g.status, 404);
  assertErrorShape(assert, await g.json(), 404);
});

test('405: wrong method on a known route', async () => {
  for (const [method, path] of [['GET', '/v1/completions'], ['DELETE', '/v1/models'], ['POST', '/health'], ['PUT', '/v1/chat/completions']]) {
    const r = await fetch(`${server.url}${path}`, { method, headers: AUTH });
    assert.equal(r.status, 405, `${method} ${path}`);
    assertErrorShape(assert, await r.json(), 405);
  }
});

test('413: body over --max-request-bytes', async () => {
  await expectError(413, '/v1/completions', { prompt: 'x'.repeat(8192) });
});

test('503 with Retry-After at once when the queue is full; the server recovers', async () => {
  // One running, one waiting; a 4,096-token context so the running one (1,000 tokens) cannot
  // finish while the others arrive. (At 2,000 tokens the two took 50-64 s under ASan on a 2-core
  // Zen 3, against the 60 s bound below.)
  const small = await startServer(['--max-num-seqs', '1', '--max-queue-len', '1', '--max-model-len', '4096']);
  try {
    const body = { prompt: 'hi', max_tokens: 1000, ignore_eos: true };
    const started = Date.now();
    const timed = async () => { const t0 = Date.now(); const r = await post(`${small.url}/v1/completions`, body); r.ms = Date.now() - t0; return r; };
    const first = timed();
    await untilRunning(small.url);
    const rest = Promise.all(Array.from({ length: 11 }, timed));
    const results = [await first, ...await rest];
    const rejected = results.filter((r) => r.status === 503);
    assert.equal(rejected.length, 10, `statuses: ${results.map((r) => r.status)}`);
    for (const r of results) assert.ok(r.status === 200 || r.status === 503, String(r.status));
    for (const r of rejected) {
      assertErrorShape(assert, r.body, 503);
      assert.ok(r.headers.get('retry-after'), 'no Retry-After');
      assert.ok(r.ms < 5000, `a 503 took ${r.ms} ms`);  // at once, not after a timeout
    }
    assert.ok(Date.now() - started < 60_000);
    const ok = await post(`${small.url}/v1/completions`, { prompt: 'hi', max_tokens: 3 });
    assert.equal(ok.status, 200);
  } finally {
    assert.equal((await small.stop()).code, 0, small.log());
  }
});
