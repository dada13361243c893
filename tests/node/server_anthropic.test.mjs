// Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens, as vLLM and llama-server
// serve it) through the official `@anthropic-ai/sdk` against `tinyserve serve dummy:tiny`
// (random weights: only grammars make the output well formed): answers equal to the same chat
// request, the stream's events and the SDK's accumulated message, stop sequences, tools and
// their results, JSON output, token counts, Anthropic-shaped errors and X-Api-Key.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Anthropic, OpenAI, startServer } from './server_util.mjs';

const MODEL = 'dummy:tiny';
const KEY = 'sk-test-anthropic';
let server;
let client;
let openai;

before(async () => {
  server = await startServer(['--max-model-len', '2048', '--kv-cache-memory', '64MiB', '--api-key', KEY]);
  // The SDK sends the key as X-Api-Key; the OpenAI SDK as Authorization: Bearer.
  client = new Anthropic({ apiKey: KEY, baseURL: server.url, maxRetries: 0 });
  openai = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, server.log());
});

const ADD = {
  name: 'add',
  description: 'Adds two integers',
  input_schema: {
    type: 'object',
    properties: { a: { type: 'integer' }, b: { type: 'integer' } },
    required: ['a', 'b'],
    additionalProperties: false,
  },
};

const textOf = (message) => message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

test('a text answer: the Message, its stop reason and usage match the chat endpoint', async () => {
  const m = await client.messages.create({
    model: MODEL, max_tokens: 8, temperature: 0, system: 'Be brief.',
    messages: [{ role: 'user', content: 'Say hello' }],
  });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.match(m.id, /^msg_/);
  assert.equal(m.model, MODEL);
  // The same request as a chat: the same tokens (greedy) and the same counts.
  const chat = await openai.chat.completions.create({
    model: MODEL, max_tokens: 8, temperature: 0,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello' }],
  });
  assert.equal(textOf(m), chat.choices[0].message.content);
  assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, chat.usage.prompt_tokens);
  assert.equal(m.usage.output_tokens, chat.usage.completion_tokens);
  const finish = chat.choices[0].finish_reason;
  assert.equal(m.stop_reason, finish === 'length' ? 'max_tokens' : 'end_turn');
  assert.equal(m.stop_sequence, null);
  // count_tokens: the same prompt, counted without generating.
  const counted = await client.messages.countTokens({
    model: MODEL, system: 'Be brief.', messages: [{ role: 'user', content: 'Say hello' }],
  });
  assert.equal(counted.input_tokens, chat.usage.prompt_tokens);
});

test('models: the SDK lists and retrieves the served model', async () => {
  const listed = [];
  for await (const model of client.models.list()) listed.push(model);
  assert.deepEqual(listed.map((m) => [m.type, m.id, m.display_name]), [['model', MODEL, MODEL]]);
  assert.ok(!Number.isNaN(Date.parse(listed[0].created_at)), listed[0].created_at);
  assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
  await assert.rejects(client.models.retrieve('claude-opus-9'), Anthropic.NotFoundError);
});

test('a stream: the events in order, deltas adding up to the final message', async () => {
  const params = {
    model: MODEL, max_tokens: 12, temperature: 0,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Count to five' }] }],
  };
  const stream = client.messages.stream(params);
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalMessage();
  const types = events.map((e) => e.type);
  assert.deepEqual(types.filter((t) => t !== 'content_block_delta'), [
    'message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop',
  ]);
  const deltas = events.filter((e) => e.type === 'content_block_delta');
  assert.ok(deltas.length >= 1);
  assert.ok(deltas.every((e) => e.index === 0 && e.delta.type === 'text_delta' && e.delta.text !== ''));
  const text = deltas.map((e) => e.delta.text).join('');
  assert.equal(textOf(final), text);
  assert.equal(events[0].message.usage.input_tokens, final.usage.input_tokens + final.usage.cache_read_input_tokens);
  // The same message as the one answered whole.
  const whole = await client.messages.create(params);
  assert.equal(textOf(whole), text);
  assert.equal(whole.stop_reason, final.stop_reason);
  assert.equal(whole.usage.output_tokens, final.usage.output_tokens);
});

test('stop_sequences: the text ends before the sequence, which the message names', async () => {
  const params = { model: MODEL, max_tokens: 24, temperature: 0, messages: [{ role: 'user', content: 'Go on' }] };
  const free = textOf(await client.messages.create(params));
  assert.ok(free.length >= 6, free);
  // A stop sequence taken from the middle of the greedy answer must cut it there.
  const stop = free.slice(Math.floor(free.length / 2), Math.floor(free.length / 2) + 2);
  const cut = free.slice(0, free.indexOf(stop));
  for (const stream of [false, true]) {
    const m = stream
      ? await client.messages.stream({ ...params, stop_sequences: [stop] }).finalMessage()
      : await client.messages.create({ ...params, stop_sequences: [stop] });
    assert.equal(m.stop_reason, 'stop_sequence', JSON.stringify(m));
    assert.equal(m.stop_sequence, stop);
    assert.equal(textOf(m), cut);
  }
});

test('max_tokens past the context: cut to what the prompt leaves, as Anthropic does', async () => {
  // A prompt ~40 tokens short of the 2,048-token context, measured with count_tokens.
  const base = await client.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'x' }] });
  const perWord = (await client.messages.countTokens({
    model: MODEL, messages: [{ role: 'user', content: 'x' + ' word'.repeat(100) }],
  })).input_tokens - base.input_tokens;
  const content = 'x' + ' word'.repeat(Math.floor((2008 - base.input_tokens) * 100 / perWord));
  const params = { model: MODEL, max_tokens: 32000, temperature: 0, messages: [{ role: 'user', content }] };
  // Streamed, as the SDK insists for such a max_tokens (and as Claude Code asks).
  const m = await client.messages.stream(params).finalMessage();
  const prompt = m.usage.input_tokens + m.usage.cache_read_input_tokens;
  assert.ok(prompt > 1900 && prompt < 2048, String(prompt));
  if (m.stop_reason === 'model_context_window_exceeded') assert.equal(prompt + m.usage.output_tokens, 2048);
  else assert.equal(m.stop_reason, 'end_turn', JSON.stringify(m));  // the model's end came first
  // OpenAI's route refuses the same ask, as vLLM does.
  await assert.rejects(openai.chat.completions.create({ ...params, max_tokens: 32000 }), OpenAI.BadRequestError);
});

test('tools: tool_use blocks with valid input, then tool_result blocks for the next turn', async () => {
  for (const stream of [false, true]) {
    const params = {
      model: MODEL, max_tokens: 200, temperature: 1, tools: [ADD], tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'What is 2 + 3?' }],
    };
    const m = stream ? await client.messages.stream(params).finalMessage() : await client.messages.create(params);
    assert.equal(m.stop_reason, 'tool_use');
    const uses = m.content.filter((b) => b.type === 'tool_use');
    assert.ok(uses.length >= 1, JSON.stringify(m.content));
    for (const use of uses) {
      assert.equal(use.name, 'add');
      assert.deepEqual(Object.keys(use.input).sort(), ['a', 'b']);
      assert.ok(Number.isInteger(use.input.a) && Number.isInteger(use.input.b), JSON.stringify(use.input));
    }
    const next = await client.messages.create({
      model: MODEL, max_tokens: 4, temperature: 0, tools: [ADD],
      messages: [
        { role: 'user', content: 'What is 2 + 3?' },
        { role: 'assistant', content: m.content },
        { role: 'user', content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id, content: '5' })) },
      ],
    });
    assert.equal(next.type, 'message');
    assert.ok(next.usage.input_tokens + next.usage.cache_read_input_tokens > 40);
  }
  // A named tool: exactly that tool.
  const named = await client.messages.create({
    model: MODEL, max_tokens: 200, temperature: 1, tools: [ADD, { ...ADD, name: 'sub' }],
    tool_choice: { type: 'tool', name: 'sub' }, messages: [{ role: 'user', content: '5 - 3?' }],
  });
  assert.deepEqual(named.content.filter((b) => b.type === 'tool_use').map((b) => b.name), ['sub']);
});

test('output_config.format json_schema: the text parses and keeps to the schema', async () => {
  const schema = {
    type: 'object',
    properties: { answer: { enum: ['yes', 'no'] }, confidence: { type: 'integer', minimum: 0, maximum: 9 } },
    required: ['answer', 'confidence'],
    additionalProperties: false,
  };
  for (const stream of [false, true]) {
    const params = {
      model: MODEL, max_tokens: 64, temperature: 1, messages: [{ role: 'user', content: 'Is the sky blue?' }],
      output_config: { format: { type: 'json_schema', schema } },
    };
    const m = stream ? await client.messages.stream(params).finalMessage() : await client.messages.create(params);
    const value = JSON.parse(textOf(m));
    assert.deepEqual(Object.keys(value).sort(), ['answer', 'confidence']);
    assert.ok(['yes', 'no'].includes(value.answer));
    assert.ok(Number.isInteger(value.confidence) && value.confidence >= 0 && value.confidence <= 9);
  }
});

test('errors: the SDK raises typed errors from Anthropic-shaped bodies', async () => {
  const cases = [
    [{ messages: [{ role: 'user', content: 'hi' }] }, /max_tokens/],
    [{ max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'http://x/y.png' } }] }] }, /messages\[0\]\.content\[0\]/],
    [{ max_tokens: 4, messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /tools\[0\]/],
    [{ max_tokens: 4, messages: [{ role: 'user', content: 'hi' }], top_k: -2 }, /top_k/],
    [{ max_tokens: 4, messages: [] }, /messages/],
  ];
  for (const [body, message] of cases) {
    await assert.rejects(client.messages.create({ model: MODEL, ...body }), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `${JSON.stringify(body)}: ${e}`);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'invalid_request_error');
      assert.match(e.error.error.message, message);
      return true;
    });
  }
  await assert.rejects(
    client.messages.create({ model: 'claude-opus-9', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === 'not_found_error');
  const stranger = new Anthropic({ apiKey: 'wrong', baseURL: server.url, maxRetries: 0 });
  await assert.rejects(
    stranger.messages.create({ model: MODEL, max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === 'authentication_error');
  // The OpenAI routes keep OpenAI's shape and take X-Api-Key too.
  const res = await fetch(`${server.url}/v1/models`, { headers: { 'x-api-key': KEY } });
  assert.equal(res.status, 200);
  const bad = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json' }, body: '{}',
  });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.type, 'invalid_request_error');
});
