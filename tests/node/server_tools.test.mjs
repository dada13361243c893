// Tool calls and structured output through the official `openai` Node SDK against
// `tinyserve serve dummy:tiny` (random weights: only the grammar makes the calls well formed).
// tool_choice "required" and a named function give parsed tool_calls (streaming and not) whose
// arguments satisfy the tool's parameters; the tool result goes back in a second turn;
// response_format json_schema answers parse.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { OpenAI, startServer } from './server_util.mjs';

const MODEL = 'dummy:tiny';
let server;
let client;

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['celsius', 'fahrenheit'] } },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'add',
      parameters: {
        type: 'object',
        properties: { a: { type: 'integer' }, b: { type: 'integer' } },
        required: ['a', 'b'],
        additionalProperties: false,
      },
    },
  },
];

// The arguments the parameters above allow (checked by hand: two small fixed schemas).
function checkArguments(name, args) {
  const value = JSON.parse(args);
  if (name === 'get_weather') {
    assert.deepEqual(Object.keys(value).sort(), ['city', 'unit']);
    assert.equal(typeof value.city, 'string');
    assert.ok([...value.city].length <= 20, value.city);
    assert.ok(['celsius', 'fahrenheit'].includes(value.unit), value.unit);
  } else {
    assert.equal(name, 'add');
    assert.deepEqual(Object.keys(value).sort(), ['a', 'b']);
    assert.ok(Number.isInteger(value.a) && Number.isInteger(value.b), args);
  }
}

before(async () => {
  server = await startServer(['--max-model-len', '2048', '--kv-cache-memory', '64MiB']);
  client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, server.log());
});

const ASK = [{ role: 'user', content: 'What is the weather in Paris?' }];

test('tool_choice required: parsed tool_calls with valid arguments, finish_reason tool_calls', async () => {
  for (let seed = 0; seed < 4; ++seed) {
    const r = await client.chat.completions.create({
      model: MODEL, messages: ASK, tools: TOOLS, tool_choice: 'required', seed, temperature: 1, max_tokens: 200,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(choice));
    assert.ok(choice.message.tool_calls.length >= 1);
    for (const call of choice.message.tool_calls) {
      assert.equal(call.type, 'function');
      assert.match(call.id, /^call_/);
      checkArguments(call.function.name, call.function.arguments);
    }
    assert.equal(choice.message.content, null);
  }
});

test('named tool_choice calls exactly that function; the result goes back in a second turn', async () => {
  const first = await client.chat.completions.create({
    model: MODEL, messages: ASK, tools: TOOLS, seed: 3, temperature: 1, max_tokens: 200,
    tool_choice: { type: 'function', function: { name: 'add' } },
  });
  const message = first.choices[0].message;
  assert.equal(message.tool_calls.length, 1);
  assert.equal(message.tool_calls[0].function.name, 'add');
  checkArguments('add', message.tool_calls[0].function.arguments);
  const second = await client.chat.completions.create({
    model: MODEL, tools: TOOLS, max_tokens: 8, temperature: 0,
    messages: [...ASK, message, { role: 'tool', tool_call_id: message.tool_calls[0].id, content: '{"sum": 5}' }],
  });
  assert.equal(second.choices[0].message.role, 'assistant');
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
});

test('streaming tool calls reassemble into the same calls as the SDK sees them', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, messages: ASK, tools: TOOLS, tool_choice: 'required', seed: 11, temperature: 1,
    max_tokens: 200, stream: true,
  });
  const calls = [];
  let finish = null;
  let content = '';
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta?.content) content += c.delta.content;
    for (const tc of c.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { id: tc.id, name: '', arguments: '' };
      calls[tc.index].name += tc.function?.name ?? '';
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(content, '');
  assert.ok(calls.length >= 1);
  for (const call of calls) {
    assert.match(call.id, /^call_/);
    checkArguments(call.name, call.arguments);
  }
});

test('tool_choice none leaves the tools out and parses nothing; unknown function is a 400', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: ASK, tools: TOOLS, tool_choice: 'none', max_tokens: 4,
  });
  assert.equal(r.choices[0].message.tool_calls, undefined);
  const plain = await client.chat.completions.create({ model: MODEL, messages: ASK, max_tokens: 1 });
  assert.equal(r.usage.prompt_tokens, plain.usage.prompt_tokens);
  await assert.rejects(
    client.chat.completions.create({
      model: MODEL, messages: ASK, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } },
    }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice',
  );
});

test('response_format json_schema through the SDK parses and has the required keys', async () => {
  const schema = {
    type: 'object',
    properties: { title: { type: 'string', maxLength: 30 }, score: { type: 'number', minimum: 0, maximum: 10 } },
    required: ['title', 'score'],
    additionalProperties: false,
  };
  for (let seed = 0; seed < 4; ++seed) {
    const r = await client.chat.completions.create({
      model: MODEL, messages: ASK, seed, temperature: 1, max_tokens: 120,
      response_format: { type: 'json_schema', json_schema: { name: 'review', schema, strict: true } },
    });
    assert.equal(r.choices[0].finish_reason, 'stop');
    const value = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(value).sort(), ['score', 'title']);
    assert.ok(value.score >= 0 && value.score <= 10);
  }
});
