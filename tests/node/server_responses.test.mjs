// The Responses API (/v1/responses, as vLLM serves it) through the official `openai` Node SDK
// against `tinyserve serve dummy:tiny` (random weights: only grammars make the output well
// formed): text answers streamed and not, the stream's typed events in their order, text.format
// json_schema, function tools and their results as input items, typed errors.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { OpenAI, startServer } from './server_util.mjs';

const MODEL = 'dummy:tiny';
let server;
let client;

before(async () => {
  server = await startServer(['--max-model-len', '2048', '--kv-cache-memory', '64MiB']);
  client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, server.log());
});

const ADD = {
  type: 'function',
  name: 'add',
  description: 'Adds two integers',
  parameters: {
    type: 'object',
    properties: { a: { type: 'integer' }, b: { type: 'integer' } },
    required: ['a', 'b'],
    additionalProperties: false,
  },
};

test('a text answer: the Response object, output_text and usage match the chat endpoint', async () => {
  const r = await client.responses.create({
    model: MODEL, input: 'Say hello', instructions: 'Be brief.', max_output_tokens: 8, temperature: 0,
  });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.model, MODEL);
  assert.equal(r.instructions, 'Be brief.');
  assert.equal(r.max_output_tokens, 8);
  assert.equal(r.output.length, 1);
  const [message] = r.output;
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.content[0].type, 'output_text');
  // The same request as a chat: the same tokens (greedy) and the same counts.
  const chat = await client.chat.completions.create({
    model: MODEL, max_tokens: 8, temperature: 0,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello' }],
  });
  assert.equal(r.output_text, chat.choices[0].message.content);
  assert.equal(r.usage.input_tokens, chat.usage.prompt_tokens);
  assert.equal(r.usage.output_tokens, chat.usage.completion_tokens);
  assert.equal(r.usage.total_tokens, chat.usage.total_tokens);
  // Cut by max_output_tokens: incomplete, as OpenAI reports it.
  assert.equal(chat.choices[0].finish_reason === 'length', r.status === 'incomplete');
  if (r.status === 'incomplete') assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
});

test('a stream: the typed events in order, deltas adding up to the final text', async () => {
  const stream = await client.responses.create({
    model: MODEL, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Count to five' }] }],
    max_output_tokens: 12, temperature: 0, stream: true,
  });
  const events = [];
  for await (const event of stream) events.push(event);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  const types = events.map((e) => e.type);
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.ok(deltas.length >= 1);
  assert.deepEqual(types.filter((t) => t !== 'response.output_text.delta'), [
    'response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', 'response.output_text.done', 'response.content_part.done',
    'response.output_item.done', types.at(-1),
  ]);
  assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)), types.at(-1));
  const text = deltas.map((e) => e.delta).join('');
  assert.equal(events.find((e) => e.type === 'response.output_text.done').text, text);
  const final = events.at(-1).response;
  assert.equal(final.output[0].content[0].text, text);
  if (final.status === 'incomplete') assert.equal(final.usage.output_tokens, 12);
  else assert.ok(final.usage.output_tokens >= 1 && final.usage.output_tokens <= 12);
  // The same text as the response answered whole.
  const whole = await client.responses.create({
    model: MODEL, input: 'Count to five', max_output_tokens: 12, temperature: 0,
  });
  assert.equal(whole.output_text, text);
});

test('text.format json_schema: the answer parses and keeps to the schema', async () => {
  const schema = {
    type: 'object',
    properties: { answer: { enum: ['yes', 'no'] }, confidence: { type: 'integer', minimum: 0, maximum: 9 } },
    required: ['answer', 'confidence'],
    additionalProperties: false,
  };
  for (const stream of [false, true]) {
    const params = {
      model: MODEL, input: 'Is the sky blue?', max_output_tokens: 64, temperature: 1, seed: 5,
      text: { format: { type: 'json_schema', name: 'verdict', schema, strict: true } },
    };
    let text;
    if (stream) {
      const events = [];
      for await (const e of await client.responses.create({ ...params, stream: true })) events.push(e);
      assert.equal(events.at(-1).type, 'response.completed');
      text = events.at(-1).response.output[0].content[0].text;
    } else {
      const r = await client.responses.create(params);
      assert.equal(r.status, 'completed');
      assert.deepEqual(r.text.format.name, 'verdict');
      text = r.output_text;
    }
    const value = JSON.parse(text);
    assert.deepEqual(Object.keys(value).sort(), ['answer', 'confidence']);
    assert.ok(['yes', 'no'].includes(value.answer), text);
    assert.ok(Number.isInteger(value.confidence) && value.confidence >= 0 && value.confidence <= 9, text);
  }
});

test('function tools: a function_call item, then its output as input items for the next turn', async () => {
  for (const stream of [false, true]) {
    const params = {
      model: MODEL, input: 'What is 2 + 3?', tools: [ADD], tool_choice: 'required',
      max_output_tokens: 200, temperature: 1, seed: 3,
    };
    let output;
    if (stream) {
      const events = [];
      for await (const e of await client.responses.create({ ...params, stream: true })) events.push(e);
      const args = events.filter((e) => e.type === 'response.function_call_arguments.done');
      assert.ok(args.length >= 1);
      output = events.at(-1).response.output;
      assert.deepEqual(args.map((e) => e.arguments), output.filter((o) => o.type === 'function_call').map((o) => o.arguments));
    } else {
      output = (await client.responses.create(params)).output;
    }
    const calls = output.filter((o) => o.type === 'function_call');
    assert.ok(calls.length >= 1, JSON.stringify(output));
    for (const call of calls) {
      assert.equal(call.name, 'add');
      assert.match(call.call_id, /^call_/);
      const value = JSON.parse(call.arguments);
      assert.deepEqual(Object.keys(value).sort(), ['a', 'b']);
      assert.ok(Number.isInteger(value.a) && Number.isInteger(value.b), call.arguments);
    }
    const next = await client.responses.create({
      model: MODEL, tools: [ADD], max_output_tokens: 4, temperature: 0,
      input: [
        { role: 'user', content: 'What is 2 + 3?' },
        ...calls.map(({ call_id, name, arguments: a }) => ({ type: 'function_call', call_id, name, arguments: a })),
        ...calls.map(({ call_id }) => ({ type: 'function_call_output', call_id, output: '{"sum": 5}' })),
      ],
    });
    assert.equal(next.object, 'response');
    assert.ok(next.usage.input_tokens > 20);
  }
});

test('errors are typed and name the Responses field', async () => {
  const cases = [
    [{ input: 'hi', previous_response_id: 'resp_1' }, 'previous_response_id'],
    [{ input: 'hi', max_output_tokens: 0 }, 'max_output_tokens'],
    [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x/y.png' }] }] }, 'input[0].content[0]'],
    [{ input: 'hi', tools: [{ type: 'web_search' }] }, 'tools[0]'],
    [{ input: 'hi', text: { format: { type: 'json_schema', name: 'x' } } }, 'text.format'],
    [{}, 'input'],
  ];
  for (const [body, param] of cases) {
    await assert.rejects(client.responses.create({ model: MODEL, ...body }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${JSON.stringify(body)}: ${e}`);
      assert.equal(e.param, param, JSON.stringify(body));
      return true;
    });
  }
  await assert.rejects(client.responses.create({ model: 'gpt-9', input: 'hi' }), OpenAI.NotFoundError);
});
