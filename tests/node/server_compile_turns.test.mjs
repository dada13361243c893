// A flood of slow structured-output grammars from one address: compile slots go client by
// client (structured/compile_gate), so another address's new schema is compiled after the
// compiles already running instead of behind the whole flood (under first come, first served it
// waited 10 s and got 503). Order is asserted, never time: the test waits on /metrics.
import assert from 'node:assert/strict';
import http from 'node:http';
import os from 'node:os';
import { after, before, test } from 'node:test';

import { sleep, startServer } from './server_util.mjs';

let server;
before(async () => { server = await startServer([]); });
after(async () => { assert.equal((await server.stop()).code, 0, server.log()); });

// POSTs `body` from `localAddress` (any of 127.0.0.0/8 reaches the server as another client).
function postFrom(url, body, localAddress) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/completions`, {
      method: 'POST', localAddress, agent: false,
      headers: { 'content-type': 'application/json' },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function compileWaits(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^tinyserve:structured_grammar_compile_waits_total\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
}

// A regex that takes about a second to compile on Qwen2.5's vocabulary before it is refused
// (its token tables pass 64 MiB); each salt makes another text, so no answer is remembered.
const slowRegex = (salt) =>
  '(' + Array.from({ length: 300 }, (_, j) => `[a-z]{1,40}${j}${salt}`).join('|') + ')';

test('a flood of slow schemas from one address does not queue another address behind it', async () => {
  // The server compiles on half the cores: that many flood compiles run, five more wait.
  const slots = Math.max(1, Math.floor(os.availableParallelism() / 2));
  const waiting = 5;
  const order = [];
  const waitsBefore = await compileWaits(server.url);
  const flood = [];
  for (let i = 0; i < slots + waiting; ++i) {
    flood.push(postFrom(server.url, {
      prompt: 'hi', max_tokens: 2, structured_outputs: { regex: slowRegex(`f${i}`) },
    }, '127.0.0.2').then((status) => { order.push('flood'); return status; }));
  }
  const deadline = Date.now() + 60_000;
  while (await compileWaits(server.url) < waitsBefore + waiting) {
    assert.ok(Date.now() < deadline, 'the flood never filled the compile queue');
    await sleep(20);
  }
  const schema = { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] };
  const user = await postFrom(server.url, {
    prompt: 'hi', max_tokens: 8,
    response_format: { type: 'json_schema', json_schema: { name: 'a', schema } },
  }, '127.0.0.3');
  order.push('user');
  assert.equal(user, 200);
  const statuses = await Promise.all(flood);
  // The flood's texts are refused (400), or wait past the 10 s limit (503).
  for (const s of statuses) assert.ok(s === 400 || s === 503, `flood answered ${s}`);
  // The user's compile came after the running ones, before every waiting one (under first
  // come, first served its place among the six waiters was the draw of a lock).
  const before = order.indexOf('user');
  assert.ok(before <= slots, `the user's schema waited behind ${before} flood compiles: ${order}`);
});
