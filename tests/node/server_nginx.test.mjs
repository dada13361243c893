// tinyserve behind nginx as a reverse proxy (issue 17): plain and streamed (SSE) requests through
// nginx's HTTP/1.1 keep-alive upstream and through its default HTTP/1.0 upstream protocol, and a
// client that leaves while nginx relays a non-streamed request gets its request aborted.
// Skipped (with a message) where nginx is not installed.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { freePort, post, sseData, startServer, untilRunning } from './server_util.mjs';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
if (!NGINX) console.log('SKIP: nginx is not installed; the reverse-proxy tests do not run');

let server;
let nginx;
let url;
let dir;

before(async () => {
  if (!NGINX) return;
  // nginx names the upstream block in Host: a DNS name, so it is listed (README, Serving).
  // A 4,096-token context, so the abandoned request below cannot finish before it is dropped.
  server = await startServer(['--allowed-hosts', 'tinyserve', '--max-model-len', '4096']);
  const port = await freePort();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tinyserve-nginx-'));
  const up = `127.0.0.1:${server.port}`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/error.log;
pid ${dir}/nginx.pid;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream tinyserve { server ${up}; keepalive 8; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://tinyserve;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
    location /h10/ {
      proxy_pass http://${up}/;
      proxy_buffering off;
    }
  }
}
`);
  const check = spawnSync(NGINX, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch { /* not yet listening */ }
    assert.ok(i < 100, 'nginx did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (!NGINX) return;
  nginx.kill('SIGQUIT');
  await new Promise((r) => nginx.once('exit', r));
  assert.equal((await server.stop()).code, 0, server.log());
  fs.rmSync(dir, { recursive: true, force: true });
});

for (const prefix of ['', '/h10']) {
  const proto = prefix ? 'HTTP/1.0 upstream' : 'HTTP/1.1 keep-alive upstream';
  test(`through nginx (${proto}): plain and streamed completions`, { skip: !NGINX }, async () => {
    for (let i = 0; i < 3; i++) {  // several on the same upstream connections
      const r = await post(`${url}${prefix}/v1/completions`, { prompt: 'hi', max_tokens: 4 });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.choices.length, 1);
    }
    const s = await fetch(`${url}${prefix}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true }),
    });
    assert.equal(s.status, 200);
    const data = sseData(await s.text());
    assert.equal(data.at(-1), '[DONE]');
  });
}

async function abortedCount() {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/request_success_total\{[^}]*finished_reason="abort"\} (\S+)/.exec(text)?.[1] ?? 0);
}

test('through nginx: a client that leaves gets its non-streamed request aborted', { skip: !NGINX }, async () => {
  const before = await abortedCount();
  // 4,000 tokens take the tiny model ~0.5-2 s; nginx passes the hang-up on in milliseconds.
  const body = JSON.stringify({ prompt: 'hi', max_tokens: 4000, ignore_eos: true });
  const sock = net.connect(Number(new URL(url).port), '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  await untilRunning(server.url);
  sock.destroy();
  const deadline = Date.now() + 15000;
  while (await abortedCount() === before) {
    assert.ok(Date.now() < deadline, 'the request behind nginx was never aborted');
    await new Promise((r) => setTimeout(r, 100));
  }
});
