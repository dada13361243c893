// `tinyserve serve dummy:tiny` driven by the official `openai` Node SDK as a real client (chat and
// completions, streaming and not, n > 1, logprobs, stop, seed, usage, typed errors) plus raw
// fetch checks of the SSE framing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { OpenAI, post, sseData, startServer } from './server_util.mjs';

const MODEL = 'dummy:tiny';
let server;
let client;

before(async () => {
  server = await startServer(['--api-key', 'sk-test']);
  client = new OpenAI({ apiKey: 'sk-test', baseURL: `${server.url}/v1`, maxRetries: 0 });
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, server.log());
});

test('models lists the served model', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test('models.retrieve finds the served model, encoded or raw; another id is a 404', async () => {
  const model = await client.models.retrieve(MODEL);  // the SDK sends /v1/models/dummy%3Atiny
  assert.equal(model.id, MODEL);
  assert.equal(model.object, 'model');
  await assert.rejects(client.models.retrieve('gpt-9'), OpenAI.NotFoundError);
  const get = (path, method = 'GET') =>
    fetch(`${server.url}${path}`, { method, headers: { Authorization: 'Bearer sk-test' } });
  const raw = await get(`/v1/models/${MODEL}`);
  assert.equal(raw.status, 200);
  assert.equal((await raw.json()).id, MODEL);
  for (const path of ['/v1/models/%zz', '/v1/models/dummy%3', '/v1/models/dummy%3Atiny%2F']) {
    const r = await get(path);
    assert.equal(r.status, 404, path);
    assert.equal((await r.json()).error.code, 'model_not_found');
  }
  assert.equal((await get(`/v1/models/${MODEL}`, 'POST')).status, 405);
  assert.equal((await fetch(`${server.url}/v1/models/${MODEL}`)).status, 401);  // no key
});

test('completion: text, finish_reason length and usage add up', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Hello there', max_tokens: 6 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 6);
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 6);
});

test('chat: message with assistant role, n > 1 gives n indexed choices', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, n: 3, temperature: 1,
  });
  assert.equal(r.object, 'chat.completion');
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of r.choices) {
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
  }
  assert.equal(r.usage.completion_tokens, 12);
});

test('streaming chat via the SDK reassembles the non-streaming greedy text, usage last', async () => {
  const req = { model: MODEL, messages: [{ role: 'user', content: 'count' }], max_tokens: 8, temperature: 0 };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let first = true;
  for await (const chunk of stream) {
    if (first) { assert.equal(chunk.choices[0].delta.role, 'assistant'); first = false; }
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('streaming completions with n = 2 finish every choice', async () => {
  const stream = await client.completions.create({ model: MODEL, prompt: 'a b c', max_tokens: 5, n: 2, stream: true });
  const finished = new Set();
  for await (const chunk of stream) for (const c of chunk.choices) if (c.finish_reason) finished.add(c.index);
  assert.deepEqual([...finished].sort(), [0, 1]);
});

test('same seed and temperature 1 give the same text; another seed differs', async () => {
  const req = { model: MODEL, prompt: 'Once upon', max_tokens: 12, temperature: 1, seed: 1234 };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  const c = await client.completions.create({ ...req, seed: 99 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.notEqual(a.choices[0].text, c.choices[0].text);
});

test('stop string cuts the greedy text before its first occurrence', async () => {
  const req = { model: MODEL, prompt: 'The quick brown', max_tokens: 16, temperature: 0 };
  const full = (await client.completions.create(req)).choices[0].text;
  const start = Math.floor(full.length / 2);
  const stop = full.slice(start, start + 2);
  assert.ok(stop.length === 2, `greedy text too short: ${JSON.stringify(full)}`);
  const r = await client.completions.create({ ...req, stop: [stop] });
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('chat logprobs: one entry per token with top alternatives, chosen <= 0', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(typeof t.token, 'string');
  }
});

test('completion logprobs: tokens, token_logprobs, top_logprobs, text_offset align', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 4, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 4);
  assert.equal(lp.token_logprobs.length, 4);
  assert.equal(lp.top_logprobs.length, 4);
  assert.equal(lp.text_offset.length, 4);
});

test('echo + logprobs scores the prompt (teacher forcing equals generation), as lm-eval reads it', async () => {
  // Greedy tokens with their logprobs, then the prompt plus those tokens echoed back with
  // max_tokens 1: the echoed entries of the generated tokens are the same numbers.
  const prompt = [9707, 1052, 11, 1879, 374];
  const gen = await client.completions.create({
    model: MODEL, prompt, max_tokens: 4, temperature: 0, logprobs: 2,
  });
  const generated = gen.choices[0].logprobs.token_logprobs;
  assert.equal(generated.length, 4);
  // The generated ids: each returned token string tokenizes back to one id.
  const ids = [];
  for (const tok of gen.choices[0].logprobs.tokens) {
    const r = await post(`${server.url}/tokenize`, { model: MODEL, prompt: tok },
      { Authorization: 'Bearer sk-test' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.tokens.length, 1, tok);
    ids.push(r.body.tokens[0]);
  }
  const scored = await client.completions.create({
    model: MODEL, prompt: [...prompt, ...ids], max_tokens: 1, temperature: 0, echo: true,
    logprobs: 1,
  });
  const lp = scored.choices[0].logprobs;
  const n = prompt.length + ids.length;
  assert.equal(lp.tokens.length, n + 1);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  assert.deepEqual(lp.token_logprobs.slice(prompt.length, n), generated);
  for (let i = 1; i < lp.token_logprobs.length; ++i) assert.ok(lp.token_logprobs[i] <= 0);
  for (let i = 1; i < lp.text_offset.length; ++i) {
    assert.equal(lp.text_offset[i], lp.text_offset[i - 1] + Buffer.byteLength(lp.tokens[i - 1]));
  }
  assert.equal(scored.choices[0].prompt_logprobs.length, n);  // vLLM's field too
  // max_tokens 0 with echo (OpenAI's legacy scoring call): the prompt alone, the same numbers.
  const only = await client.completions.create({
    model: MODEL, prompt: [...prompt, ...ids], max_tokens: 0, echo: true, logprobs: 1,
  });
  assert.ok(only.choices[0].text.length > 0);
  assert.ok(scored.choices[0].text.startsWith(only.choices[0].text));
  assert.deepEqual(only.choices[0].logprobs.token_logprobs, lp.token_logprobs.slice(0, n));
  assert.equal(only.usage.completion_tokens, 0);
  await assert.rejects(client.completions.create({
    model: MODEL, prompt: 'hi', max_tokens: 1, prompt_logprobs: 50,
  }), OpenAI.BadRequestError);
});

test('chat prompt_logprobs (vLLM: beside the choices) equal completions on the rendered tokens', async () => {
  const messages = [{ role: 'user', content: 'Name three colours.' }];
  const chat = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 1, temperature: 0, prompt_logprobs: 2,
  });
  const auth = { Authorization: 'Bearer sk-test' };
  // The rendered chat prompt's ids, as the server tokenizes them (with the generation prompt).
  const ids = (await post(`${server.url}/tokenize`, { model: MODEL, messages }, auth)).body.tokens;
  const plain = await client.completions.create({
    model: MODEL, prompt: ids, max_tokens: 1, temperature: 0, prompt_logprobs: 2,
  });
  const listed = chat.prompt_logprobs;
  assert.equal(listed.length, ids.length);
  assert.equal(listed[0], null);
  for (let i = 1; i < ids.length; ++i) {
    const entry = listed[i][String(ids[i])];
    assert.ok(entry.logprob <= 0 && entry.rank >= 1, JSON.stringify(listed[i]));
  }
  assert.deepEqual(listed, plain.choices[0].prompt_logprobs);
  assert.equal(chat.choices[0].prompt_logprobs, undefined);
  // A stream has no place for them: refused, as vLLM refuses them.
  await assert.rejects(client.chat.completions.create({
    model: MODEL, messages, max_tokens: 1, stream: true, prompt_logprobs: 1,
  }), OpenAI.BadRequestError);
});

test('return_token_ids (vLLM): the rendered prompt and the output ids, streamed the same', async () => {
  const auth = { Authorization: 'Bearer sk-test' };
  const messages = [{ role: 'user', content: 'Count to five.' }];
  const chat = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 6, temperature: 0, return_token_ids: true,
  });
  const rendered = (await post(`${server.url}/tokenize`, { model: MODEL, messages }, auth)).body;
  assert.deepEqual(chat.prompt_token_ids, rendered.tokens);
  const ids = chat.choices[0].token_ids;
  assert.equal(ids.length, chat.usage.completion_tokens);
  const text = (await post(`${server.url}/detokenize`, { model: MODEL, tokens: ids }, auth)).body;
  assert.equal(text.prompt, chat.choices[0].message.content);
  // Streamed: the prompt's ids once, in the first chunk; the chunks' ids add up to the same.
  const stream = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 6, temperature: 0, return_token_ids: true, stream: true,
  });
  const streamed = [];
  let first = true;
  for await (const chunk of stream) {
    assert.equal(chunk.prompt_token_ids !== undefined, first, JSON.stringify(chunk));
    first = false;
    for (const choice of chunk.choices) streamed.push(...(choice.token_ids ?? []));
  }
  assert.deepEqual(streamed, ids);
  // Completions: per choice.
  const plain = await client.completions.create({
    model: MODEL, prompt: rendered.tokens, max_tokens: 6, temperature: 0, return_token_ids: true,
  });
  assert.deepEqual(plain.choices[0].prompt_token_ids, rendered.tokens);
  assert.deepEqual(plain.choices[0].token_ids, ids);
  // /tokenize renders what the chat endpoint does: tools, the developer role and all.
  const withTools = {
    messages: [{ role: 'developer', content: 'Be brief.' }, ...messages],
    tools: [{ type: 'function', function: { name: 'add', parameters: { type: 'object' } } }],
  };
  const toolChat = await client.chat.completions.create({
    model: MODEL, ...withTools, max_tokens: 1, return_token_ids: true,
  });
  const toolTok = (await post(`${server.url}/tokenize`, { model: MODEL, ...withTools }, auth)).body;
  assert.deepEqual(toolTok.tokens, toolChat.prompt_token_ids);
  assert.equal(toolTok.count, toolChat.usage.prompt_tokens);
  assert.ok(toolTok.count > rendered.count + 20);  // the tool's description is in it
});

test('truncate_prompt_tokens keeps the last tokens; asks the server cannot honour are 400s', async () => {
  const prompt = [9707, 1052, 11, 1879, 374, 264, 1273, 13];
  const cut = await client.completions.create({
    model: MODEL, prompt, max_tokens: 5, temperature: 0, truncate_prompt_tokens: 3,
  });
  const tail = await client.completions.create({
    model: MODEL, prompt: prompt.slice(-3), max_tokens: 5, temperature: 0,
  });
  assert.equal(cut.usage.prompt_tokens, 3);
  assert.equal(cut.choices[0].text, tail.choices[0].text);
  for (const extra of [{ suffix: '}' }, { use_beam_search: true }, { best_of: 2 }]) {
    await assert.rejects(client.completions.create({ model: MODEL, prompt: 'hi', ...extra }),
      OpenAI.BadRequestError, JSON.stringify(extra));
  }
});

test('remote tokenizer probe (lm-evaluation-harness): /tokenizer_info and /tokenize', async () => {
  const auth = { Authorization: 'Bearer sk-test' };
  const info = await fetch(`${server.url}/tokenizer_info`, { headers: auth });
  assert.equal(info.status, 200);
  const body = await info.json();
  assert.equal(body.eos_token, '<|im_end|>');
  assert.equal(body.pad_token, '<|endoftext|>');
  assert.equal(body.bos_token, null);
  assert.ok(body.chat_template.includes('<|im_start|>'));
  assert.equal(typeof body.model_max_length, 'number');
  assert.equal((await fetch(`${server.url}/tokenizer_info`)).status, 401);  // no key
  const tok = await post(`${server.url}/tokenize`, { prompt: 'test', add_special_tokens: false },
    auth);
  assert.equal(tok.status, 200);
  assert.ok(Array.isArray(tok.body.tokens) && tok.body.tokens.length > 0);
  // The EOS string tokenizes to the one id the harness takes as its end-of-text token.
  const eos = await post(`${server.url}/tokenize`, { prompt: body.eos_token }, auth);
  assert.deepEqual(eos.body.tokens, [151645]);
});

test('errors surface as the SDK typed errors', async () => {
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', n: 0 }), OpenAI.BadRequestError);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 0 }), OpenAI.BadRequestError);
  await assert.rejects(client.completions.create({ model: 'gpt-9', prompt: 'x' }), OpenAI.NotFoundError);
  const bad = new OpenAI({ apiKey: 'wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
  await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
});

test('raw SSE: role first, finish_reason last, usage, then data: [DONE]', async () => {
  const r = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true, stream_options: { include_usage: true } }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const data = sseData(await r.text());
  assert.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const usageChunk = chunks.at(-1);
  assert.deepEqual(usageChunk.choices, []);
  assert.equal(usageChunk.usage.completion_tokens, 3);
  const withChoices = chunks.slice(0, -1);
  assert.equal(withChoices.at(-1).choices[0].finish_reason, 'length');
  for (const c of withChoices.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1);
});

// llama-server's spellings of the same endpoints ('content', 'parse_special', 'with_pieces'; the
// text back as 'content'). The expected answers are llama-server's own for these bodies
// (benchmarks/build_llama_server.sh's build, de3ff81, on a Qwen2.5 GGUF): ids, token texts, and
// the bytes of tokens that are not UTF-8 alone.
test("llama-server's /tokenize and /detokenize spellings give llama-server's answers", async () => {
  const auth = { authorization: 'Bearer sk-test' };
  const tok = async (body) => (await post(`${server.url}/tokenize`, body, auth)).body.tokens;
  assert.deepEqual(await tok({ content: 'Hello world<|im_end|>' }), [9707, 1879, 151645]);
  assert.deepEqual(
      await tok({ content: 'Hello world<|im_end|>', parse_special: false, with_pieces: true }),
      [[9707, 'Hello'], [1879, ' world'], [27, '<'], [91, '|'], [318, 'im'], [6213, '_end'],
       [91, '|'], [29, '>']].map(([id, piece]) => ({ id, piece })));
  assert.deepEqual(await tok({ content: '🧬🫠 ꙮ ᚠ', with_pieces: true }),
      [[123908, [240, 159, 167]], [105, [172]], [9284, [240, 159]], [104, [171]], [254, [160]],
       [8620, [32, 234]], [247, [153]], [106, [174]], [86089, [32, 225]], [248, [154]],
       [254, [160]]].map(([id, piece]) => ({ id, piece })));
  const bad = await post(`${server.url}/tokenize`, { content: 'x', with_pieces: 'yes' }, auth);
  assert.equal(bad.status, 400);
  const d = await post(`${server.url}/detokenize`, { tokens: [9707, 1879, 151645] }, auth);
  assert.equal(d.body.content, 'Hello world<|im_end|>');
  assert.equal(d.body.prompt, d.body.content);
});

test('tokenize / detokenize round trip (with the key); health and version need no key', async () => {
  const auth = { authorization: 'Bearer sk-test' };
  const t = await post(`${server.url}/tokenize`, { prompt: 'hello world' }, auth);
  assert.equal(t.status, 200);
  assert.equal(t.body.count, t.body.tokens.length);
  const d = await post(`${server.url}/detokenize`, { tokens: t.body.tokens }, auth);
  assert.equal(d.body.prompt, 'hello world');
  assert.equal((await fetch(`${server.url}/version`)).status, 200);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });  // llama-server's answer
});
