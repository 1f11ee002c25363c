/**
 * Both TLS hops with the real FerretDB and the real MongoDB driver: `ferretdbTls` (clients to
 * FerretDB's TLS listener through `NAME-rw`/`NAME-ro`) and `postgresTls` (FerretDB to PostgreSQL
 * with `sslmode=verify-full`), from Secrets made with openssl by one throwaway CA, as synthesized.
 * The certificate-watch sidecar's rollout request is certificate-watch.test.ts's; the roll it
 * asks for, with clients working through it, is here.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { NAME } from './fixture';
import { clientStatefulSet, CLIENT, MongoCluster, PRIMARY, READER_DEPLOYMENT, replica, RO, RW, WRITER_DEPLOYMENT } from './mongo-fixture';
import { TestCa } from './test-ca';
import { FerretDBCluster, FerretDBClusterProps, FerretDBTls, PostgresTls } from '../../src';

jest.setTimeout(300_000);

const PG_SECRET = `${NAME}-pg-tls`;
const MONGO_SECRET = `${NAME}-ferretdb-tls`;
const PROPS: FerretDBClusterProps = { ferretdbTls: FerretDBTls.fromSecret(MONGO_SECRET), postgresTls: PostgresTls.fromSecret(PG_SECRET) };
const CLIENT_SCRIPT = path.join(__dirname, 'ferretdb', 'mongo-client.js');

/** The names the construct lists: FerretDB's Services (clients), PostgreSQL's Services and pods. */
function dnsNames(): { mongo: string[]; postgres: string[] } {
  const cluster = new FerretDBCluster(Testing.chart(), 'db', { name: NAME, ...PROPS });
  return { mongo: cluster.tlsDnsNames, postgres: cluster.primary.tlsDnsNames };
}

let m: MongoCluster;
let ca: TestCa;
let pgSecret: { [key: string]: string };
let caFile: string;

beforeAll(async () => {
  ca = new TestCa();
  const names = dnsNames();
  expect(names.mongo).toEqual(expect.arrayContaining([RW, RO]));
  pgSecret = ca.issue(names.postgres).secret;
  m = await MongoCluster.boot(PROPS, { secrets: { [PG_SECRET]: pgSecret, [MONGO_SECRET]: ca.issue(names.mongo).secret } });
  // The application's copy of the CA (a path its pod can read).
  caFile = path.join(m.h.root, 'mongo-ca.crt');
  fs.writeFileSync(caFile, ca.caCrt, { mode: 0o644 });
}, 600_000);

afterAll(async () => {
  // What the FerretDB pods said, for a failed run.
  m?.logWarnings();
  await m?.destroy();
  ca?.destroy();
});

/** The README's connection string with TLS: `tls=true`, the CA file, a short server selection. */
function tlsUri(host: string, extra = ''): string {
  return `${m.uri(host).replace(/\/(\?.*)?$/, '/')}?tls=true&tlsCAFile=${encodeURIComponent(caFile)}&serverSelectionTimeoutMS=5000${extra}`;
}

test('ferretdbTls: the driver writes through NAME-rw and reads through NAME-ro over TLS, verifying the CA and the Service name', async () => {
  const written = await m.value(tlsUri(RW), `
    await db.collection('tls').insertOne({ _id: 1, v: 'over tls' });
    const hello = await db.admin().command({ hello: 1 });
    return { doc: await db.collection('tls').findOne({ _id: 1 }), writable: hello.isWritablePrimary };`);
  expect(written).toEqual({ doc: { _id: 1, v: 'over tls' }, writable: true });
  const read = await m.h.waitUntil(`${RO} reads the document over TLS`, 60_000, async () => {
    const r = await m.mongo(`${tlsUri(RO)}&readPreference=secondaryPreferred`, "return db.collection('tls').findOne({ _id: 1 });");
    return r.ok && r.value ? r.value : undefined;
  });
  expect(read).toEqual({ _id: 1, v: 'over tls' });
});

test('the driver\'s verification is what lets it in: without the CA, or by the ClusterIP (not on the certificate), it refuses the server', async () => {
  const noCa = await m.mongo(`${m.uri(RW).replace(/\/(\?.*)?$/, '/')}?tls=true&serverSelectionTimeoutMS=5000`, 'return 1;');
  console.log(`TLS without the CA: ${JSON.stringify(noCa.error)}`);
  expect(noCa.ok).toBe(false);
  expect(noCa.error!.message).toMatch(/self[- ]signed certificate|unable to (get|verify) .*certificate/i);
  const byIp = await m.mongo(tlsUri(m.h.clusterIp(RW)), 'return 1;');
  console.log(`TLS by ClusterIP: ${JSON.stringify(byIp.error)}`);
  expect(byIp.ok).toBe(false);
  expect(byIp.error!.message).toMatch(/IP: .* is not in the cert's list|does not match certificate's altnames/i);
  // The same URI by the Service name connects (the first test), so the name is what failed.
  expect(await m.value(tlsUri(RW), 'return 1;')).toBe(1);
});

test('plain text is refused: NAME-rw and NAME-ro reach only the TLS listener; the plain listener answers on the pod\'s loopback only', async () => {
  for (const service of [RW, RO]) {
    const plain = await m.mongo(`${m.uri(service).replace(/\/(\?.*)?$/, '/')}?serverSelectionTimeoutMS=5000`, 'return db.collection(\'tls\').countDocuments({});');
    console.log(`plain text to ${service}: ${JSON.stringify(plain.error)}`);
    expect({ service, ok: plain.ok }).toEqual({ service, ok: false });
  }
  const writer = m.ferretPods(WRITER_DEPLOYMENT)[0];
  const byPodIp = await m.mongo(`mongodb://ferretdb:${encodeURIComponent(m.password())}@${m.h.podIP(writer)}:27017/?directConnection=true&serverSelectionTimeoutMS=3000`, 'return 1;');
  expect(byPodIp.ok).toBe(false);
  expect(byPodIp.error!.message).toMatch(/ECONNREFUSED/);
  // Inside the pod, the loopback listener (what /debug/readyz pings through) serves plain text.
  const input = JSON.stringify({ uri: `mongodb://ferretdb:${encodeURIComponent(m.password())}@127.0.0.1:27017/?directConnection=true`, db: 'shop', body: "return db.collection('tls').countDocuments({});" });
  // (FerretDB's image holds nothing but its binary: the driver runs from the host, in the pod's
  // network namespace.)
  const netns = m.h.netnsNames.find((n) => n.includes(`-${writer}-`));
  expect(netns).toBeDefined();
  const loopback = spawnSync('ip', ['netns', 'exec', netns!, process.execPath, CLIENT_SCRIPT], { input, timeout: 60_000, encoding: 'utf8' });
  expect({ status: loopback.status, stderr: loopback.stderr }).toEqual({ status: 0, stderr: '' });
  expect(JSON.parse(loopback.stdout)).toEqual({ ok: true, value: 1 });
});

/** FerretDB's sessions on a server (role `ferretdb`, from the network) and whether each is TLS. */
async function ferretdbSessions(pod: string): Promise<string> {
  return m.pg.sql(pod, `SELECT count(*) || ' ' || coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
    WHERE a.usename = 'ferretdb' AND a.client_addr IS NOT NULL`);
}

test('postgresTls: every connection of FerretDB\'s pools, writers on the primary and readers on the standbys, is TLS', async () => {
  expect(await m.value(tlsUri(RW), "return (await db.collection('tls').insertOne({ _id: 2 })).acknowledged;")).toBe(true);
  expect(await ferretdbSessions(PRIMARY)).toMatch(/^[1-9]\d* true$/);
  // The readers' pools, on the standbys behind NAME-pg-ro (after a read through NAME-ro).
  expect(await m.value(`${tlsUri(RO)}&readPreference=secondaryPreferred`, "return db.collection('tls').countDocuments({});")).toBeGreaterThan(0);
  const standbys = await m.h.waitUntil('reader sessions on a standby', 90_000, async () => {
    const s = await Promise.all([replica(0), replica(1)].map((pod) => ferretdbSessions(pod)));
    return s.some((x) => /^[1-9]\d* true$/.test(x)) ? s : undefined;
  });
  console.log(`FerretDB's sessions (count, all TLS): ${PRIMARY} ${await ferretdbSessions(PRIMARY)}; ${replica(0)} ${standbys[0]}; ${replica(1)} ${standbys[1]}`);
  expect(standbys.every((x) => /^\d+ true$/.test(x) || x === '0 false')).toBe(true);
});

/** Replaces one pod of a Deployment; the new pod's name. */
async function replacePod(deployment: string): Promise<string> {
  const before = m.ferretPods(deployment);
  await m.h.deletePod(before[0]);
  return m.h.waitUntil(`${deployment} has a new pod`, 60_000, () => m.ferretPods(deployment).find((p) => !before.includes(p)));
}

test('verify-full: with a PostgreSQL certificate that lacks NAME-pg-rw and NAME-pg-ro, new FerretDB pods cannot connect and stay not Ready; with the right one back, the same pods become Ready', async () => {
  const bad = ca.issue(dnsNames().postgres.filter((n) => n !== `${NAME}-pg-rw` && n !== `${NAME}-pg-ro`)).secret;
  const pods = [PRIMARY, replica(0), replica(1)];
  const marks = pods.map((pod) => m.pg.logMark(pod, 'agent'));
  m.h.setSecret(PG_SECRET, bad);
  for (const [i, pod] of pods.entries()) await m.pg.waitLog(pod, /TLS certificate changed: reloaded/, marks[i], 60_000, 'agent');

  const writer = await replacePod(WRITER_DEPLOYMENT);
  const reader = await replacePod(READER_DEPLOYMENT);
  for (const [pod, host] of [[writer, `${NAME}-pg-rw`], [reader, `${NAME}-pg-ro`]]) {
    await m.h.waitUntil(`${pod} logs the certificate's host name mismatch`, 90_000, () =>
      new RegExp(`certificate is valid for .*not ${host}`).test(m.h.logs(pod, 'ferretdb')));
    const line = m.h.logs(pod, 'ferretdb').split('\n').find((l) => l.includes(`not ${host}`));
    console.log(`${pod} with a certificate without ${host}: ${line?.slice(0, 400)}`);
    expect({ pod, ready: m.h.isReady(pod) }).toEqual({ pod, ready: false });
    expect(m.h.endpoints(host === `${NAME}-pg-rw` ? RW : RO)).not.toContain(pod);
  }
  // The old pods keep serving through their open connections: clients are unaffected.
  expect(await m.value(tlsUri(RW), "return db.collection('tls').countDocuments({});")).toBe(2);

  // Positive control: the right certificate again, and the same pods connect.
  const back = pods.map((pod) => m.pg.logMark(pod, 'agent'));
  m.h.setSecret(PG_SECRET, pgSecret);
  for (const [i, pod] of pods.entries()) await m.pg.waitLog(pod, /TLS certificate changed: reloaded/, back[i], 60_000, 'agent');
  await m.h.waitUntil(`${writer} and ${reader} Ready`, 120_000, () => m.h.isReady(writer) && m.h.isReady(reader));
  expect(m.ferretPods(WRITER_DEPLOYMENT)).toContain(writer);
  expect(m.ferretPods(READER_DEPLOYMENT)).toContain(reader);
  await m.h.waitUntil(`${writer} in ${RW}`, 30_000, () => m.h.endpoints(RW).includes(writer));
});

/** Runs `op` every 100 ms until the stop file exists: when each succeeded, and the errors by kind. */
const LOOP = (stopFile: string, op: string) => `
  const fs = require('fs');
  const ok = [];
  const errors = {};
  for (let i = 1; !fs.existsSync(${JSON.stringify(stopFile)}); i++) {
    try {
      ${op}
      ok.push(Date.now());
    } catch (e) {
      const key = (e.codeName || e.name) + ': ' + String(e.message).slice(0, 80);
      errors[key] = (errors[key] || 0) + 1;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ok, errors };`;

test('a renewed listener certificate: the rollout it asks for replaces the writer and reader pods one at a time (maxUnavailable 0), and TLS clients of both Services keep working through it', async () => {
  const before = [...m.ferretPods(WRITER_DEPLOYMENT), ...m.ferretPods(READER_DEPLOYMENT)];
  const stopFile = path.join(m.h.root, 'stop-tls-clients');
  const run = (uri: string, op: string) => m.h.exec(CLIENT, 'app', ['node', CLIENT_SCRIPT],
    { input: JSON.stringify({ uri, db: 'shop', body: LOOP(stopFile, op) }), timeoutMs: 600_000 });
  const writing = run(tlsUri(RW), "await db.collection('roll').insertOne({ _id: i, at: Date.now() });");
  const reading = run(`${tlsUri(RO)}&readPreference=secondaryPreferred`, "await db.collection('tls').findOne({ _id: 1 });");
  await new Promise((r) => setTimeout(r, 3000));

  // The renewal (same CA, new key), and the rollout the certificate-watch sidecar asks for: its
  // annotation on both pod templates, applied as the Deployment controller gets it.
  m.h.setSecret(MONGO_SECRET, ca.issue(dnsNames().mongo).secret);
  const rolled = (m.pg.synth(PROPS) as any[]).map((o) => o.kind === 'Deployment' && [WRITER_DEPLOYMENT, READER_DEPLOYMENT].includes(o.metadata.name)
    ? {
      ...o,
      spec: {
        ...o.spec,
        template: {
          ...o.spec.template,
          metadata: {
            ...o.spec.template.metadata,
            annotations: { ...o.spec.template.metadata.annotations, 'ferretdb.cdk8s.io/certificates': 'renewed' },
          },
        },
      },
    }
    : o);
  const rollStart = Date.now();
  let fewestReady = Infinity;
  const sampling = setInterval(() => {
    for (const d of [WRITER_DEPLOYMENT, READER_DEPLOYMENT]) fewestReady = Math.min(fewestReady, m.ferretPods(d).filter((p) => m.h.isReady(p)).length);
  }, 100);
  try {
    await m.h.apply([...rolled, clientStatefulSet], { wait: false });
    await m.h.waitUntil('every FerretDB pod replaced and Ready', 240_000, () => {
      const now = [...m.ferretPods(WRITER_DEPLOYMENT), ...m.ferretPods(READER_DEPLOYMENT)];
      return now.length === before.length && now.every((p) => !before.includes(p) && m.h.isReady(p));
    });
  } finally {
    clearInterval(sampling);
  }
  const rollMs = Date.now() - rollStart;
  await new Promise((r) => setTimeout(r, 3000));
  fs.writeFileSync(stopFile, '');
  const results = await Promise.all([writing, reading]);
  const [w, rd] = results.map((r) => (JSON.parse(r.stdout) as { ok: boolean; value: { ok: number[]; errors: Record<string, number> } }));
  const gap = (times: number[]) => Math.max(...times.slice(1).map((t, i) => t - times[i]));
  const failed = (e: Record<string, number>) => Object.values(e).reduce((a, b) => a + b, 0);
  console.log(`FerretDB rollout on renewal: ${rollMs} ms; writes ${w.value.ok.length} ok, ${failed(w.value.errors)} failed ${JSON.stringify(w.value.errors)}, `
    + `longest gap ${gap(w.value.ok)} ms; reads ${rd.value.ok.length} ok, ${failed(rd.value.errors)} failed ${JSON.stringify(rd.value.errors)}, `
    + `longest gap ${gap(rd.value.ok)} ms; fewest Ready pods of a side during the roll: ${fewestReady}`);
  expect(w.ok && rd.ok).toBe(true);
  // One at a time, never below the replicas: each side kept a Ready pod throughout.
  expect(fewestReady).toBeGreaterThanOrEqual(1);
  for (const [side, r] of [['writes', w], ['reads', rd]] as const) {
    expect({ side, workedDuringRoll: r.value.ok.some((at) => at > rollStart && at < rollStart + rollMs) }).toEqual({ side, workedDuringRoll: true });
    expect({ side, workedAfter: r.value.ok.some((at) => at > rollStart + rollMs) }).toEqual({ side, workedAfter: true });
  }
});
