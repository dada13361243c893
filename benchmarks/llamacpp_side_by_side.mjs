// llama.cpp's speed on a GGUF file, on this machine, for a side-by-side with bench_model on the
// same file: prefill of one prompt per length, then greedy decode at batch 1 after the first
// prompt. llama.cpp is node-llama-cpp's prebuilt CPU build of libllama (the npm dependency the
// tests use; it loads the CPU variant built for this processor), default settings otherwise: f16
// K/V cache, flash attention "auto", batches of 2,048. Prompts are seeded pseudo-random ordinary
// tokens; times include nothing but the evaluation calls.
//
//   node benchmarks/llamacpp_side_by_side.mjs MODEL.gguf [THREADS=2] [LENGTHS=512,2000] [DECODE=64]
// and, for tinyserve on the same file:
//   build/release/benchmarks/bench_model --threads 2 --model MODEL.gguf --dtypes stored \
//       --prompt 512 --batch 1 --context 512 --steps 64
import { getLlama } from "node-llama-cpp";

const [modelPath, threadsArg = "2", lengthsArg = "512,2000", decodeArg = "64"] =
    process.argv.slice(2);
if (!modelPath) throw new Error("usage: llamacpp_side_by_side.mjs MODEL.gguf [THREADS LENGTHS N]");
const threads = Number(threadsArg), decode = Number(decodeArg);
const lengths = lengthsArg.split(",").map(Number);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: Math.max(...lengths) + decode + 16,
                                            batchSize: 2048, threads, sequences: 1 });
const seq = context.getSequence();
const limit = Math.min(model.tokens.bos, model.tokens.eos);  // ordinary ids come first
const prompt = (n) => Array.from({ length: n }, (_, i) => (i * 7919 + 13) % limit);

const seconds = async (fn) => {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
};
console.log(`llama.cpp (node-llama-cpp, prebuilt CPU build), ${modelPath}, ${threads} threads`);
for (const [i, n] of lengths.entries()) {
  await seq.clearHistory();
  const s = await seconds(() => seq.evaluateWithoutGeneratingNewTokens(prompt(n)));
  console.log(`prefill ${n} tokens: ${(n / s).toFixed(1)} tok/s (${s.toFixed(3)} s)`);
  if (i !== 0 || decode <= 0) continue;
  let made = 0;
  const d = await seconds(async () => {
    // Fed the prompt's next token, then each greedy one: one single-token decode per token.
    for await (const _ of seq.evaluate([prompt(n + 1)[n]], { temperature: 0 })) {
      if (++made >= decode) break;
    }
  });
  console.log(`decode batch 1 after ${n}: ${(made / d).toFixed(2)} tok/s (${made} tokens)`);
}
await model.dispose();
await llama.dispose();
