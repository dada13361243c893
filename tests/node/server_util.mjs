// Shared by the tests/node/server_*.test.mjs files: start `tinyserve serve` on a free loopback
// port, wait for /health, stop it with SIGTERM; load the `openai` and `@anthropic-ai/sdk`
// packages from the repo root.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

export const BIN = process.env.TINYSERVE_BIN;
export const SRC = process.env.TINYSERVE_SOURCE_DIR ?? path.resolve(import.meta.dirname, '../..');
const require = createRequire(path.join(SRC, 'package.json'));
export const OpenAI = require('openai');
export const Anthropic = require('@anthropic-ai/sdk');

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts the server; resolves once /health answers 200. `extra`: more CLI flags (a flag given
// here replaces the default of the same name).
export async function startServer(extra = []) {
  const port = await freePort();
  // Defaults unless `extra` sets the same flag.
  const defaults = [['--kv-cache-memory', '16MiB'], ['--max-model-len', '512']]
    .filter(([flag]) => !extra.includes(flag)).flat();
  const args = ['serve', 'dummy:tiny', '--port', String(port), ...defaults, ...extra];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited early: ${log}`);
    try {
      // Connection: close, so that no pooled connection of this process outlives the wait (the
      // server announces its keep-alive limit, and fetch would hold one that long): tests that
      // count a client's connections count only their own.
      const r = await fetch(`${url}/health`, { headers: { connection: 'close' } });
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`no /health: ${log}`); }
    await sleep(100);
  }
  return {
    port, url, proc, exited, log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

// Resolves once the server at `url` runs a sequence (its /metrics gauge): a test that must act
// while a request is being generated waits on this, not on a fixed sleep that a fast machine
// outruns.
export async function untilRunning(url) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await (await fetch(`${url}/metrics`)).text();
    if (Number(/num_requests_running\{[^}]*\} (\S+)/.exec(text)?.[1] ?? 0) >= 1) return;
    if (Date.now() > deadline) throw new Error('no request running after 10 s');
    await sleep(10);
  }
}

// POST JSON; returns {status, headers, body (parsed JSON or text)}.
export async function post(url, body, headers = {}) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, body: parsed };
}

// Splits an SSE body into its data payloads; asserts the framing (only `data:` events and
// comments, each ended by a blank line).
export function sseData(text) {
  if (!text.endsWith('\n\n')) throw new Error(`SSE body does not end with a blank line: ${text}`);
  const out = [];
  for (const event of text.slice(0, -2).split('\n\n')) {
    const lines = event.split('\n').filter((l) => !l.startsWith(':'));
    if (lines.length === 0) continue;
    if (lines.length !== 1 || !lines[0].startsWith('data: ')) throw new Error(`bad SSE event: ${event}`);
    out.push(lines[0].slice(6));
  }
  return out;
}

export function assertErrorShape(assert, body, status) {
  assert.equal(typeof body, 'object', `status ${status}: body is not JSON`);
  assert.ok(body.error, `status ${status}: no "error"`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.type, 'string');
  assert.ok('param' in body.error && 'code' in body.error);
}
