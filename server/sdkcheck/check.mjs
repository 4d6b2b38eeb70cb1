// check.mjs: drives a running `tokamak serve` with the official OpenAI Node
// SDK and asserts on what comes back.
//
//   node check.mjs http://127.0.0.1:PORT/v1 MODELNAME
//
// Checks: /v1/models lists MODELNAME; a streaming chat completion (with
// stream_options.include_usage) yields text, a finish_reason and usage, or,
// for a model without a chat template, a 400 BadRequestError; a completion
// with a token-id prompt and return_token_ids gives ids that match its usage
// and agree with the same request streamed; a bad parameter is a 400.
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
if (!baseURL || !model) {
  console.error("usage: node check.mjs BASE_URL MODEL");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: "tokamak-needs-no-key", maxRetries: 0, timeout: 60_000 });

async function checkModels() {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(model), `models ${JSON.stringify(ids)} lack ${model}`);
}

async function checkStreamingChat() {
  let stream;
  try {
    stream = await client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 24,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
  } catch (err) {
    if (err instanceof OpenAI.BadRequestError && /chat template/.test(err.message)) {
      console.log("chat: model has no chat template; server answered 400 as expected");
      return;
    }
    throw err;
  }
  let text = "";
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      chunks++;
      text += c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 1, "no chunks streamed");
  assert.ok(["stop", "length"].includes(finish), `finish_reason ${finish}`);
  assert.ok(usage, "no usage chunk despite include_usage");
  assert.ok(usage.prompt_tokens > 0, `prompt_tokens ${usage.prompt_tokens}`);
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 24, `completion_tokens ${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  if (finish === "length") assert.equal(usage.completion_tokens, 24);
  console.log(`chat: streamed ${JSON.stringify(text)} (${usage.completion_tokens} tokens, ${finish})`);
}

async function checkTokenIDCompletion() {
  const prompt = [1, 2, 3, 4, 5, 6, 7, 8];
  const params = { model, prompt, max_tokens: 8, temperature: 0, ignore_eos: true, return_token_ids: true };
  const full = await client.completions.create(params);
  assert.equal(full.object, "text_completion");
  const choice = full.choices[0];
  assert.ok(Array.isArray(choice.token_ids), "no token_ids in the choice");
  assert.equal(choice.token_ids.length, full.usage.completion_tokens);
  assert.equal(full.usage.prompt_tokens, prompt.length);
  assert.equal(full.usage.completion_tokens, 8);
  assert.equal(choice.finish_reason, "length");

  const stream = await client.completions.create({ ...params, stream: true });
  const ids = [];
  let text = "";
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      ids.push(...(c.token_ids ?? []));
      text += c.text ?? "";
    }
  }
  assert.deepEqual(ids, choice.token_ids, "streamed ids differ from non-streamed");
  assert.equal(text, choice.text, "streamed text differs from non-streamed");
  console.log(`completion: token ids ${JSON.stringify(ids)} agree streamed and not`);
}

async function checkBadRequest() {
  await assert.rejects(
    client.completions.create({ model, prompt: [1, 2], temperature: 7 }),
    (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && /temperature/.test(err.message),
  );
  console.log("errors: out-of-range temperature is a 400 BadRequestError");
}

try {
  await checkModels();
  await checkStreamingChat();
  await checkTokenIDCompletion();
  await checkBadRequest();
  console.log("sdkcheck: OK");
} catch (err) {
  console.error("sdkcheck: FAILED:", err);
  process.exit(1);
}
