'use strict';
// A MongoDB application in one file, run with `node` inside a client pod (its network namespace
// and /etc/hosts): stdin is {"uri": ..., "db": ..., "body": ...}; `body` is the body of an async
// function of (client, db, mongodb, require) whose value is printed as JSON, {"ok": true, "value": ...}, or
// the driver's error, {"ok": false, "error": {name, code, codeName, message, errorLabels}}.
const fs = require('fs');
const mongodb = require('mongodb');

async function main() {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'));
  const client = new mongodb.MongoClient(input.uri, { serverSelectionTimeoutMS: 10000, connectTimeoutMS: 5000 });
  try {
    await client.connect();
    const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor;
    const fn = new AsyncFunction('client', 'db', 'mongodb', 'require', input.body);
    return { ok: true, value: await fn(client, client.db(input.db || 'test'), mongodb, require) };
  } catch (e) {
    return { ok: false, error: { name: e.name, code: e.code, codeName: e.codeName, message: e.message, errorLabels: e.errorLabels } };
  } finally {
    await client.close().catch(() => undefined);
  }
}

// The driver's own timers do not keep Node alive: without this, a pending server selection
// could end the process with no output at all.
const keepAlive = setInterval(() => undefined, 1000);
main().then((out) => {
  clearInterval(keepAlive);
  process.stdout.write(JSON.stringify(out));
}, (e) => {
  process.stderr.write(String(e && e.stack));
  process.exit(2);
});
