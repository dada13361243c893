// Browser pages from other origins (CORS): a preflight is granted only to the origins given in
// --allowed-origins, with the headers a browser checks (Fetch standard); every other origin gets
// no grant and its requests 403, with or without the flag. Node's fetch sends what a browser
// would (an Origin header, an OPTIONS preflight) but enforces nothing, so the headers are checked
// here as the browser would check them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { post, startServer } from './server_util.mjs';

const APP = 'http://app.example:3000';
let open;   // no flag: no origin but the server's own
let cors;   // --allowed-origins APP (vLLM's JSON-list spelling)
let keyed;  // --api-key k1 --allowed-origins '*'
before(async () => {
  open = await startServer();
  cors = await startServer(['--allowed-origins', `["${APP}", "https://other.example"]`]);
  keyed = await startServer(['--api-key', 'k1', '--allowed-origins', '*']);
});
after(async () => {
  for (const s of [open, cors, keyed]) assert.equal((await s.stop()).code, 0, s.log());
});

const preflight = (url, origin, headers = 'authorization, content-type') =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': headers },
  });
const chat = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };

test('a listed origin gets its preflight and CORS headers on plain and streamed answers', async () => {
  const p = await preflight(cors.url, APP);
  assert.equal(p.status, 204);
  assert.equal(p.headers.get('access-control-allow-origin'), APP);
  assert.match(p.headers.get('access-control-allow-methods'), /\bPOST\b/);
  assert.equal(p.headers.get('access-control-allow-headers'), 'authorization, content-type');
  assert.equal(p.headers.get('vary'), 'Origin');
  const r = await post(`${cors.url}/v1/chat/completions`, chat, { origin: APP });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.headers.get('access-control-allow-origin'), APP);
  const s = await fetch(`${cors.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', origin: APP },
    body: JSON.stringify({ ...chat, stream: true }),
  });
  assert.equal(s.status, 200);
  assert.equal(s.headers.get('access-control-allow-origin'), APP);
  assert.match(await s.text(), /data: \[DONE\]/);
  // Errors carry the grant too, or the page could not read why it failed.
  const bad = await post(`${cors.url}/v1/chat/completions`, { messages: [] }, { origin: APP });
  assert.equal(bad.status, 400);
  assert.equal(bad.headers.get('access-control-allow-origin'), APP);
});

test('an origin not listed gets no grant and 403, with or without the flag', async () => {
  for (const server of [open, cors]) {
    const p = await preflight(server.url, 'http://evil.example');
    assert.notEqual(p.status, 204);
    assert.equal(p.headers.get('access-control-allow-origin'), null);
    const r = await post(`${server.url}/v1/chat/completions`, chat, { origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
  }
  // A listed origin's look-alike (another port) is another origin.
  const near = await preflight(cors.url, 'http://app.example:3001');
  assert.equal(near.headers.get('access-control-allow-origin'), null);
});

test("with an API key and '*': any page may ask, and still needs the key", async () => {
  const p = await preflight(keyed.url, 'http://any.example');
  assert.equal(p.status, 204);
  assert.equal(p.headers.get('access-control-allow-origin'), 'http://any.example');
  const noKey = await post(`${keyed.url}/v1/chat/completions`, chat, { origin: 'http://any.example' });
  assert.equal(noKey.status, 401);
  const withKey = await post(`${keyed.url}/v1/chat/completions`, chat,
    { origin: 'http://any.example', authorization: 'Bearer k1' });
  assert.equal(withKey.status, 200);
  assert.equal(withKey.headers.get('access-control-allow-origin'), 'http://any.example');
});
