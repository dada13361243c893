// llama.cpp itself, run live (node-llama-cpp's prebuilt CPU build of libllama), as the oracle of
// tests/reference/test_llamacpp_live.py. The shared fixtures hold llama.cpp's outputs for short
// prompts (24-40 tokens) only; this writes the same kind of record for long ones, and llama.cpp's
// ids for the whole tokenizer corpus, so tinyserve is compared with llama.cpp where the fixtures
// do not reach (attention over many cache blocks and partitions, RoPE at far positions).
//
//   node tests/tools/llamacpp_live.mjs logits MODEL.gguf OUT.json LENGTH[,LENGTH...]
//   node tests/tools/llamacpp_live.mjs tokenize MODEL.gguf CORPUS.jsonl OUT.jsonl
//   node tests/tools/llamacpp_live.mjs pieces MODEL.gguf OUT.jsonl
//
// logits: one prompt per LENGTH of seeded pseudo-random ids, written as the fixtures' reference
// files are (see their README): for chosen prefix lengths k, llama.cpp's top-10 next-token ids with
// log-softmax (in double) of its raw logits, decreasing logit, ties by increasing id; then 16
// greedy steps (argmax, fed back through the KV cache) with the top-10 before each. One context,
// f16 K/V cache (llama.cpp's default), 2 threads, batches of 512.
// tokenize: per corpus line {"id", "hex", "ids", "ids_no_parse_special"}: llama_tokenize with and
// without parsing special tokens, no BOS added (the Qwen2.5 files set add_bos_token false).
// pieces: per token id {"id", "hex"}: llama.cpp's text of the id alone, special tokens rendered,
// as a JavaScript string's UTF-8 (a piece that is part of a character reads as U+FFFD).
import fs from "node:fs";
import { getLlama } from "node-llama-cpp";

const [mode, modelPath, ...rest] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath, vocabOnly: mode !== "logits" });

// Prefix lengths worth recording: the first tokens, tinyserve's 16-token cache blocks, its 64- and
// 128-key attention steps and 512-key partitions on either side, and the whole prompt.
function positions(length) {
  const ks = new Set([1, 2, 16, 17, 63, 64, 65, 128, 129, 511, 512, 513, 1023, 1024, 1025,
                      1536, 1537, length]);
  return [...ks].filter((k) => k <= length).sort((a, b) => a - b);
}

// ids in [0, limit) from a fixed linear congruential generator (the same prompt on every run).
function promptIds(length, limit, seed) {
  let state = BigInt(seed);
  const ids = [];
  for (let i = 0; i < length; ++i) {
    state = (state * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    ids.push(Number((state >> 33n) % BigInt(limit)));
  }
  return ids;
}

// Top 10 of a logits Map (token -> logit) as [id, log-softmax], and the argmax id.
function top10(logits) {
  let max = -Infinity;
  for (const v of logits.values()) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits.values()) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  // The best 10 in one pass (sorting 151,936 entries per row took seconds per file).
  const before = (a, b) => a[1] > b[1] || (a[1] === b[1] && a[0] < b[0]);
  const best = [];
  for (const entry of logits.entries()) {
    if (best.length === 10 && !before(entry, best[9])) continue;
    let i = Math.min(best.length, 9);
    while (i > 0 && before(entry, best[i - 1])) --i;
    best.splice(i, 0, entry);
    if (best.length > 10) best.pop();
  }
  return best.map(([id, v]) => [id, v - lse]);
}

async function logitsRecord(outPath, lengths) {
  // Ordinary tokens only: the control tokens (BOS and EOS among them) follow every ordinary id in
  // both fixture families (Qwen2.5: 151,643 on).
  const limit = Math.min(model.tokens.bos, model.tokens.eos);
  const longest = Math.max(...lengths);
  const context = await model.createContext({ contextSize: longest + 64, batchSize: 512,
                                              threads: 2, sequences: 1 });
  const seq = context.getSequence();
  // Logits of the rows `rows` (0-based) of one pass over `tokens` from an empty cache.
  const evaluate = async (tokens, rows) => {
    await seq.clearHistory();
    const wanted = new Set(rows);
    const input = tokens.map((id, i) => (wanted.has(i) ? [id, { generateNext: { logits: true } }]
                                                       : id));
    const out = await seq.controlledEvaluate(input);
    return rows.map((row) => out[row].next.logits);
  };
  const record = { oracle: "node-llama-cpp live", file: modelPath, prompts: [] };
  for (const [n, length] of lengths.entries()) {
    const ids = promptIds(length, limit, 1000 + n);
    // The greedy tokens: argmax after the prompt, each fed back through the cache (decode).
    const greedy = [];
    let [logits] = await evaluate(ids, [length - 1]);
    for (let step = 0; step < 16; ++step) {
      greedy.push(top10(logits)[0][0]);
      if (step === 15) break;
      const stepInput = [[greedy.at(-1), { generateNext: { logits: true } }]];
      logits = (await seq.controlledEvaluate(stepInput))[0].next.logits;
    }
    // Every recorded row from one prefill of the prompt and the greedy tokens, as the fixtures'
    // greedy rows come from prefills: llama.cpp's single-token decode rounds differently (on the
    // f16 file its decode and prefill logits for the same prefix differ by up to 0.009 nats), and
    // those rows would measure llama.cpp against itself.
    const ks = positions(length);
    const greedyRows = greedy.map((_, i) => length - 1 + i);
    const rows = await evaluate([...ids, ...greedy.slice(0, 15)],
                                [...ks.map((k) => k - 1), ...greedyRows]);
    const tops = rows.map(top10);
    record.prompts.push({
      name: `random-${length}`, ids,
      positions: ks.map((k, i) => ({ k, top_id: tops[i][0][0], top: tops[i] })),
      greedy_16: greedy, greedy_16_top: tops.slice(ks.length),
    });
  }
  fs.writeFileSync(outPath, JSON.stringify(record));
}

// llama.cpp takes a JavaScript string here, so it sees that string's UTF-8 bytes: for the corpus's
// "hex" cases (bytes that are not UTF-8) the decoded text, U+FFFD for each bad sequence, and for
// lone surrogates U+FFFD too. "hex" in the output is always the bytes llama.cpp tokenized.
function tokenizeCorpus(corpusPath, outPath) {
  const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.trim());
  const out = lines.map((line) => {
    const c = JSON.parse(line);
    const text = c.hex !== undefined ? new TextDecoder().decode(Buffer.from(c.hex, "hex")) : c.text;
    return JSON.stringify({ id: c.id, hex: Buffer.from(text, "utf8").toString("hex"),
                            ids: model.tokenize(text, true),
                            ids_no_parse_special: model.tokenize(text, false) });
  });
  fs.writeFileSync(outPath, out.join("\n") + "\n");
}

function pieces(outPath) {
  const out = [];
  const count = model.fileInfo.metadata.tokenizer.ggml.tokens.length;  // the GGUF's vocabulary
  for (let id = 0; id < count; ++id) {
    out.push(JSON.stringify({ id, hex: Buffer.from(model.detokenize([id], true), "utf8")
                                           .toString("hex") }));
  }
  fs.writeFileSync(outPath, out.join("\n") + "\n");
}

if (mode === "logits") {
  await logitsRecord(rest[0], rest[1].split(",").map(Number));
} else if (mode === "tokenize") {
  tokenizeCorpus(rest[0], rest[1]);
} else if (mode === "pieces") {
  pieces(rest[0]);
} else {
  throw new Error(`unknown mode ${mode}: logits, tokenize or pieces`);
}
await model.dispose();
await llama.dispose();
