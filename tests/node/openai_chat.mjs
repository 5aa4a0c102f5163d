// The official openai npm package, used as an app would: base URL and key from the
// environment (OPENAI_BASE_URL, OPENAI_API_KEY), one plain and one streamed chat completion.
// Prints what the model said, one line per call, so a test can compare it with the capture.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
const prompt = process.argv[2] ?? "hello from node";

const plain = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: `${prompt} (plain)` }],
});
console.log(`plain: ${plain.choices[0].message.content}`);

const stream = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: `${prompt} (streamed)` }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
console.log(`streamed: ${text}`);
process.exitCode = Number(process.env.EXIT_CODE ?? 0);
