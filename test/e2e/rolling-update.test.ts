/**
 * A pod-template change to a running cluster (here a new resources request; a library upgrade's
 * changed scripts change the template the same way): the StatefulSet controller rolls the
 * replica StatefulSet highest ordinal first, one pod at a time, each replacement Ready before the
 * next, and the primary StatefulSet (both at once, as Kubernetes does for one apply), while a
 * client writes through NAME-pg-rw. No acknowledged commit is lost and the cluster streams again.
 */
import * as fs from 'fs';
import * as path from 'path';
import { PG_BIN } from './documentdb';
import { PgCluster, PRIMARY, PRIMARY_STS, replica, REPLICA_STS, RW_SERVICE, NAME, TABLE } from './fixture';
import { CLIENT, clientStatefulSet } from './mongo-fixture';

jest.setTimeout(600_000);

let pg: PgCluster | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
});

const REVISION = 'controller-revision-hash';
const ALL = [PRIMARY, replica(0), replica(1)];

/** One insert of the writer: when it started and returned (ms), its id, and the server's address or the error. */
interface Write {
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  readonly id: number;
  readonly detail: string;
}

/**
 * From the client pod, inserts one row per connection into `t` through the ClusterIP of
 * NAME-pg-rw as FerretDB's role until `stopFile` exists (the client runs on the host's files, so
 * a file under the harness's root). Every attempt takes a new id, so an insert whose outcome the
 * client never learnt (a timeout) is not retried under the same id.
 */
async function writeUntilStopped(c: PgCluster, stopFile: string): Promise<Write[]> {
  const password = c.h.getSecret(`${NAME}-credentials`)?.['ferretdb-password'];
  if (!password) throw new Error(`Secret ${NAME}-credentials has no ferretdb-password`);
  const script = `
    id=1
    while [ ! -e "$3" ]; do
      s=$(date +%s%3N)
      out=$(timeout 5 psql -XAtq -v ON_ERROR_STOP=1 "host=$1 user=ferretdb dbname=postgres connect_timeout=3" \\
        -c "INSERT INTO t VALUES ($id, 'roll') RETURNING host(inet_server_addr())" 2>&1)
      rc=$?; e=$(date +%s%3N)
      if [ "$rc" = 0 ]; then echo "$s $e ok $id $out"; else echo "$s $e fail $id $(printf '%s' "$out" | head -n 1)"; sleep 0.05; fi
      id=$((id + 1))
    done
    exit 0`;
  const r = await c.h.exec(CLIENT, 'app', ['bash', '-c', `export PGPASSWORD="$2"; ${script}`, 'writer', c.h.clusterIp(RW_SERVICE), password, stopFile],
    { timeoutMs: 540_000 });
  if (r.code !== 0) throw new Error(`the writer in ${CLIENT} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((line) => {
    const [start, end, ok, id, ...rest] = line.split(' ');
    return { start: Number(start), end: Number(end), ok: ok === 'ok', id: Number(id), detail: rest.join(' ') };
  });
}

const template = (objects: unknown[], sts: string): string =>
  JSON.stringify((objects as any[]).find((o) => o.kind === 'StatefulSet' && o.metadata.name === sts)?.spec.template);

test('a pod-template change rolls the standbys highest ordinal first, one at a time, and the primary; writes through NAME-pg-rw go on and no acknowledged commit is lost', async () => {
  const events: string[] = [];
  const c = pg = await PgCluster.boot({}, { images: { 'mongo-client': { path: [PG_BIN] } }, onEvent: (line) => events.push(line) });
  const pod = (name: string) => c.h.pods().find((p) => p.name === name);
  const initial = Object.fromEntries(ALL.map((p) => [p, { revision: pod(p)!.labels[REVISION], ip: c.h.podIP(p) }]));

  // The same synth again (plus the client): no template changes, nothing rolls.
  await c.h.apply([...c.synth(), clientStatefulSet]);
  await c.h.startStatefulSet(clientStatefulSet.metadata.name);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await c.sql(PRIMARY, `${TABLE}; GRANT SELECT, INSERT ON t TO ferretdb`);
  for (const p of ALL) expect({ p, revision: pod(p)!.labels[REVISION], ip: c.h.podIP(p) }).toEqual({ p, ...initial[p] });

  const rolled = [...c.synth({ postgresResources: { cpuRequest: '150m' } }), clientStatefulSet];
  for (const sts of [PRIMARY_STS, REPLICA_STS]) expect(template(rolled, sts)).not.toBe(template(c.synth(), sts));

  // When each pod was first seen terminating on the old template, and Ready on the new one.
  const seen: Record<string, { terminating?: number; readyNew?: number }> = Object.fromEntries(ALL.map((p) => [p, {}]));
  const sampler = setInterval(() => {
    const now = Date.now();
    for (const p of c.h.pods()) {
      const s = seen[p.name];
      if (!s) continue;
      if (p.terminating && p.labels[REVISION] === initial[p.name].revision) s.terminating ??= now;
      if (p.ready && p.labels[REVISION] !== initial[p.name].revision) s.readyNew ??= now;
    }
  }, 100);
  const stopFile = path.join(c.h.root, 'stop-writer');
  const writing = writeUntilStopped(c, stopFile);
  let writes: Write[];
  let rollStart: number;
  let rollEnd: number;
  try {
    await c.h.waitUntil('commits through the Service before the roll', 60_000, async () => (await c.count(PRIMARY, 't')) >= 20);
    rollStart = Date.now();
    await c.h.apply(rolled, { timeoutMs: 300_000 });
    rollEnd = Date.now();
    await c.h.waitUntil('commits through the Service after the roll', 120_000, async () => (await c.count(PRIMARY, 't')) >= 20
      && (await c.sql(PRIMARY, 'SELECT count(*) FROM t WHERE id > (SELECT max(id) FROM t) - 10')) === '10');
    fs.writeFileSync(stopFile, '');
    writes = await writing;
  } finally {
    clearInterval(sampler);
    fs.writeFileSync(stopFile, '');
  }
  const acked = writes.filter((w) => w.ok);
  const refused = writes.filter((w) => !w.ok);
  console.log(`roll of both PostgreSQL StatefulSets: ${rollEnd - rollStart} ms; ${acked.length} inserts acknowledged, ${refused.length} refused `
    + `(${[...new Set(refused.map((w) => w.detail.slice(0, 80)))].slice(0, 5).join(' | ')}); `
    + `longest gap between acknowledged inserts ${Math.max(...acked.slice(1).map((w, i) => w.end - acked[i].end))} ms`);

  // Every pod was replaced (new template, new IP) and is Ready.
  for (const p of ALL) {
    expect({ p, revisionChanged: pod(p)!.labels[REVISION] !== initial[p].revision, ipChanged: c.h.podIP(p) !== initial[p].ip, ready: c.h.isReady(p) })
      .toEqual({ p, revisionChanged: true, ipChanged: true, ready: true });
  }
  // The standbys: replica-1 first, and replica-0 only once the new replica-1 was Ready.
  const replaced = (p: string) => events.findIndex((e) => e.includes(`${p}: StatefulSet `) && e.includes('replaces it'));
  expect(replaced(replica(1))).toBeGreaterThanOrEqual(0);
  expect(replaced(replica(0))).toBeGreaterThan(replaced(replica(1)));
  expect(replaced(PRIMARY)).toBeGreaterThanOrEqual(0);
  expect(seen[replica(1)].readyNew).toBeDefined();
  expect(seen[replica(0)].terminating).toBeDefined();
  expect(seen[replica(1)].readyNew!).toBeLessThanOrEqual(seen[replica(0)].terminating!);

  // Writes went on: accepted by the old primary before the roll and by the new primary pod after it.
  expect(acked.some((w) => w.end < rollStart && w.detail === initial[PRIMARY].ip)).toBe(true);
  expect(acked.some((w) => w.start > seen[PRIMARY].readyNew! && w.detail === c.h.podIP(PRIMARY))).toBe(true);
  // No acknowledged commit is lost, on the primary and on both standbys.
  const ids = acked.map((w) => w.id).join(',');
  expect(Number(await c.sql(PRIMARY, `SELECT count(*) FROM t WHERE id IN (${ids})`))).toBe(acked.length);
  await c.waitStreaming(PRIMARY, [replica(0), replica(1)], 180_000);
  expect(await c.writablePrimaries(ALL)).toEqual([PRIMARY]);
  const total = await c.count(PRIMARY, 't');
  for (const r of [replica(0), replica(1)]) await c.waitCount(r, 't', total);
  for (const r of [replica(0), replica(1)]) expect(Number(await c.sql(r, `SELECT count(*) FROM t WHERE id IN (${ids})`))).toBe(acked.length);
});
