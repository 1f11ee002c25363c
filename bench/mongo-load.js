'use strict';
// The mongodb section's load: run with `node` in the client pod (the library's cluster) or on the
// host (the floor). stdin is {"uri", "op", "seconds", "concurrency", "keys"}; `op` is
//   - "load": insertMany documents _id 0..keys-1 into bench.docs (after dropping it);
//   - "insert": closed-loop insertOne of a new ~200-byte document per operation;
//   - "find": closed-loop findOne by a random _id in 0..keys-1 (the _id index).
// Each of `concurrency` workers has its own connection (maxPoolSize = concurrency) and waits for
// its operation's reply before the next. Prints {"ops", "errors", "seconds", "ms": [sorted latencies]}.
const fs = require('fs');
const { MongoClient } = require('mongodb');

async function main() {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'));
  const client = new MongoClient(input.uri, {
    maxPoolSize: Math.max(1, input.concurrency || 1),
    serverSelectionTimeoutMS: 20000,
    connectTimeoutMS: 10000,
  });
  await client.connect();
  const docs = client.db('bench').collection('docs');
  try {
    if (input.op === 'load') {
      await docs.drop().catch(() => undefined);
      for (let from = 0; from < input.keys; from += 500) {
        const batch = [];
        for (let i = from; i < Math.min(input.keys, from + 500); i++) batch.push({ _id: i, v: i, pad: 'x'.repeat(150) });
        await docs.insertMany(batch, { ordered: false });
      }
      return { ops: input.keys, errors: 0, seconds: 0, ms: [] };
    }
    // Every worker's connection is open before the clock starts.
    await Promise.all(Array.from({ length: input.concurrency }, () => client.db('bench').command({ ping: 1 })));
    const ms = [];
    let errors = 0;
    let firstError;
    const started = process.hrtime.bigint();
    const until = started + BigInt(Math.round(input.seconds * 1e9));
    const worker = async (w) => {
      let seq = 0;
      for (;;) {
        const t0 = process.hrtime.bigint();
        if (t0 >= until) return;
        try {
          if (input.op === 'insert') {
            await docs.insertOne({ w, seq: seq++, at: new Date(), pad: 'x'.repeat(150) });
          } else {
            const doc = await docs.findOne({ _id: Math.floor(Math.random() * input.keys) });
            if (!doc) throw new Error('findOne found nothing');
          }
          ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        } catch (e) {
          errors++;
          firstError = firstError || String(e && e.message);
        }
      }
    };
    await Promise.all(Array.from({ length: input.concurrency }, (_, w) => worker(w)));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    ms.sort((a, b) => a - b);
    return { ops: ms.length, errors, firstError, seconds, ms };
  } finally {
    await client.close();
  }
}

// The driver's timers do not keep Node alive on their own.
const keepAlive = setInterval(() => undefined, 1000);
main().then((out) => {
  clearInterval(keepAlive);
  process.stdout.write(JSON.stringify(out));
}, (e) => {
  process.stderr.write(String(e && e.stack));
  process.exit(2);
});
