/**
 * Section 6, MongoDB clients: the real FerretDB (the default image's version, built by
 * test/e2e/ferretdb/build.sh) with the real `mongodb` driver (bench/mongo-load.js: closed-loop
 * insertOne and findOne by _id, 4 connections, 10 s per measurement after a 3 s warm-up).
 *
 * 1. The library's cluster (test/e2e/mongo-fixture.ts: a default FerretDBCluster, 2 standbys,
 *    async, FerretDB's writer and reader Deployments, the driver in a client pod through the
 *    Services) against the floor: the same FerretDB binary, one process on the host, on bare
 *    PostgreSQL 15 with DocumentDB of the same topology (initdb, two pg_basebackup standbys, the
 *    settings DocumentDB needs, nothing else), the driver on the host. Insert and find
 *    throughput and p50/p99 latency, measured alternately (floor, ours, floor, ours) so that a
 *    change of the machine's load hits both. The same through a writer pod's own address (no
 *    NAME-rw hop), and then with the writer FerretDB pointed at the primary pod's address (a
 *    bench-only URL: no Service proxy on the path at all), shows what the harness's userspace
 *    Service proxy costs.
 * 2. Read scaling: finds through NAME-ro (reader FerretDB on the two standbys) against finds
 *    through NAME-rw, alone; and NAME-rw + NAME-ro at once against NAME-rw with as many clients.
 * 3. A synchronous quorum (`synchronousQuorum(1)`, a fresh cluster) against async: inserts.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FerretDBClusterProps, ReplicationMode } from '../src';
import { log, num, Options, percentile, ratio, row, Row, SectionResult, sleep } from './common';
import { track } from './pg';
import { DOCUMENTDB_TEST_PARAMETERS, ensureDocumentDb, PG_BIN } from '../test/e2e/documentdb';
import { ensureFerretDb } from '../test/e2e/ferretdb';
import { NAME, synthCluster } from '../test/e2e/fixture';
import { CLIENT, clientStatefulSet, MongoCluster, PRIMARY, RO, RW, WRITER_DEPLOYMENT } from '../test/e2e/mongo-fixture';

const LOAD_SCRIPT = path.join(__dirname, 'mongo-load.js');
const CONCURRENCY = 4;

interface Sizes {
  readonly seconds: number;
  readonly warmUpSeconds: number;
  readonly runs: number;
  readonly keys: number;
}

interface LoadInput {
  readonly uri: string;
  readonly op: 'load' | 'insert' | 'find';
  readonly seconds: number;
  readonly concurrency: number;
  readonly keys: number;
}

interface Load {
  readonly ops: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly seconds: number;
  readonly ms: number[];
}

/** Several runs of one measure, pooled: ops/s over their total time, latency percentiles over every operation. */
interface Figures {
  readonly opsPerS: number;
  readonly p50: number;
  readonly p99: number;
  readonly ops: number;
  readonly errors: number;
  readonly runsOpsPerS: number[];
  readonly load1: number[];
}

function pool(loads: Load[], load1: number[]): Figures {
  const ms = loads.flatMap((l) => l.ms);
  const seconds = loads.reduce((s, l) => s + l.seconds, 0);
  return {
    opsPerS: ms.length / seconds,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    ops: ms.length,
    errors: loads.reduce((s, l) => s + l.errors, 0),
    runsOpsPerS: loads.map((l) => l.ms.length / l.seconds),
    load1,
  };
}

/** The load script in the library's client pod (its network namespace, through the Services). */
async function inPod(m: MongoCluster, input: LoadInput): Promise<Load> {
  const r = await m.h.exec(CLIENT, 'app', ['node', LOAD_SCRIPT], { input: JSON.stringify(input), timeoutMs: input.seconds * 1000 + 120_000 });
  if (r.code !== 0) throw new Error(`mongo-load.js ${input.op} in ${CLIENT} failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr}`);
  return checked(JSON.parse(r.stdout) as Load, input);
}

/** The load script on the host (the floor's client). */
function onHost(input: LoadInput): Promise<Load> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [LOAD_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += String(d); });
    p.stderr.on('data', (d) => { err += String(d); });
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`mongo-load.js ${input.op} on the host failed (exit ${code}): ${err}`));
      try {
        resolve(checked(JSON.parse(out) as Load, input));
      } catch (e) {
        reject(e);
      }
    });
    p.stdin.end(JSON.stringify(input));
  });
}

function checked(l: Load, input: LoadInput): Load {
  if (l.errors > 0) throw new Error(`${input.op} through ${input.uri.replace(/:[^:@/]*@/, ':***@')}: ${l.errors} errors, first: ${l.firstError}`);
  return l;
}

/** A command as the postgres OS user; throws with its output unless it exits 0. */
function asPostgres(args: string[], timeoutMs = 300_000): string {
  try {
    return execFileSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${args.join(' ')} failed: ${err.message}\n${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

/** The writer Deployment's FerretDB URL parameters (pool, timeouts), for the floor's FerretDB. */
function writerUrlParameters(): string {
  const d = (synthCluster() as any[]).find((o) => o.kind === 'Deployment' && o.metadata.name === WRITER_DEPLOYMENT);
  const url: string = d.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value;
  return url.slice(url.indexOf('?') + 1);
}

/**
 * The floor: bare PostgreSQL 15 with DocumentDB (a primary and two pg_basebackup standbys, async,
 * TCP on 127.0.0.1, trust) and one FerretDB process of the same binary on the host, with the
 * writer Deployment's URL parameters. `stop()` stops everything and removes the directory.
 */
class Floor {
  public static async start(): Promise<Floor> {
    const f = new Floor(fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-bench-mongo-')));
    try {
      await f.init();
    } catch (e) {
      f.stop();
      throw e;
    }
    return f;
  }

  public readonly pgPort = 56000 + (process.pid % 500);
  public readonly mongoPort = this.pgPort + 500;
  public readonly settings: string[];
  private readonly started: string[] = [];
  private ferretdb?: ChildProcess;

  private constructor(private readonly dir: string) {
    this.settings = [
      `port = ${this.pgPort}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`,
      "shared_preload_libraries = 'pg_cron,pg_documentdb_core,pg_documentdb'", "cron.database_name = 'postgres'",
      ...Object.entries(DOCUMENTDB_TEST_PARAMETERS).map(([k, v]) => `${k} = '${v}'`),
    ];
  }

  public get uri(): string {
    return `mongodb://postgres:bench@127.0.0.1:${this.mongoPort}/`;
  }

  private data(name: string): string {
    return path.join(this.dir, name);
  }

  private ctl(name: string, action: 'start' | 'stop'): void {
    asPostgres([`${PG_BIN}/pg_ctl`, '-D', this.data(name), '-w', '-t', '120', '-l', path.join(this.dir, `${name}.log`), action,
      ...(action === 'stop' ? ['-m', 'fast'] : [])]);
  }

  private psql(query: string): string {
    return asPostgres([`${PG_BIN}/psql`, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-h', this.dir, '-p', String(this.pgPort), '-d', 'postgres', '-c', query]).trim();
  }

  private async init(): Promise<void> {
    execFileSync('chown', ['postgres:postgres', this.dir]);
    asPostgres([`${PG_BIN}/initdb`, '-D', this.data('p'), '-U', 'postgres', '--auth=trust', '--no-sync']);
    fs.appendFileSync(path.join(this.data('p'), 'postgresql.conf'), `\n${this.settings.join('\n')}\n`);
    this.ctl('p', 'start');
    this.started.push('p');
    // FerretDB authenticates MongoDB clients against the role's SCRAM secret.
    this.psql("CREATE EXTENSION documentdb CASCADE; ALTER ROLE postgres PASSWORD 'bench'");
    for (const [i, name] of ['s1', 's2'].entries()) {
      asPostgres([`${PG_BIN}/pg_basebackup`, '-h', this.dir, '-p', String(this.pgPort), '-D', this.data(name), '-X', 'stream', '-c', 'fast']);
      fs.appendFileSync(path.join(this.data(name), 'postgresql.conf'), `\nport = ${this.pgPort + 1 + i}\nlisten_addresses = ''\n`
        + `primary_conninfo = 'host=${this.dir} port=${this.pgPort} user=postgres application_name=${name}'\n`);
      fs.writeFileSync(path.join(this.data(name), 'standby.signal'), '');
      execFileSync('chown', ['-R', 'postgres:postgres', this.data(name)]);
      this.ctl(name, 'start');
      this.started.push(name);
    }
    const state = this.data('state');
    fs.mkdirSync(state);
    execFileSync('chown', ['postgres:postgres', state]);
    const out = fs.openSync(path.join(this.dir, 'ferretdb.log'), 'a');
    this.ferretdb = spawn('runuser', ['-u', 'postgres', '--', ensureFerretDb(),
      `--listen-addr=127.0.0.1:${this.mongoPort}`, `--debug-addr=127.0.0.1:${this.mongoPort + 1}`,
      `--postgresql-url=postgres://postgres@127.0.0.1:${this.pgPort}/postgres?${writerUrlParameters()}`,
      `--state-dir=${state}`, '--telemetry=disable'], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const standbys = this.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL");
      let ready = false;
      try {
        execFileSync('curl', ['-sf', '-o', '/dev/null', '--max-time', '3', `http://127.0.0.1:${this.mongoPort + 1}/debug/readyz`]);
        ready = true;
      } catch {
        // not yet
      }
      if (standbys === '2' && ready) break;
      if (Date.now() > deadline || this.ferretdb.exitCode !== null) {
        throw new Error(`floor not ready after 60 s (standbys streaming: ${standbys}, FerretDB ready: ${ready}):\n`
          + fs.readFileSync(path.join(this.dir, 'ferretdb.log'), 'utf8').split('\n').slice(-20).join('\n'));
      }
      await sleep(500);
    }
  }

  public stop(): void {
    this.ferretdb?.kill('SIGTERM');
    for (const name of this.started.reverse()) {
      try {
        this.ctl(name, 'stop');
      } catch (e) {
        log(`mongodb: floor: stopping ${name}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const load1 = (): number => os.loadavg()[0];

/** Boots a library cluster with FerretDB, registered for SIGINT; `fn` runs, then it is destroyed. */
async function withMongo<T>(props: FerretDBClusterProps, fn: (m: MongoCluster) => Promise<T>): Promise<T> {
  const m = await MongoCluster.boot(props);
  const release = track(m.pg);
  try {
    return await fn(m);
  } finally {
    await release();
  }
}

export async function mongodbSection(opts: Options): Promise<SectionResult> {
  const sizes: Sizes = { seconds: opts.quick ? 3 : 10, warmUpSeconds: opts.quick ? 1 : 3, runs: opts.quick ? 1 : 2, keys: opts.quick ? 500 : 2000 };
  const loadBefore = os.loadavg();
  ensureDocumentDb();
  ensureFerretDb();
  const input = (uri: string, op: LoadInput['op'], seconds = sizes.seconds, concurrency = CONCURRENCY): LoadInput =>
    ({ uri, op, seconds, concurrency, keys: sizes.keys });

  log('mongodb: booting the library\'s cluster (2 standbys, async) with FerretDB');
  const lib = await withMongo({}, async (m) => {
    log('mongodb: starting the floor (bare PostgreSQL + DocumentDB, 2 standbys, one FerretDB)');
    const floor = await Floor.start();
    try {
      const writer = m.ferretPods(WRITER_DEPLOYMENT)[0];
      const direct = `mongodb://ferretdb:${encodeURIComponent(m.password())}@${m.h.podIP(writer)}:27017/?directConnection=true`;
      const targets = {
        floor: (i: LoadInput) => onHost(i),
        ours: (i: LoadInput) => inPod(m, i),
      };
      await targets.floor(input(floor.uri, 'load'));
      await targets.ours(input(m.uri(RW), 'load'));
      // Warm-up of every path measured below (connections, plans, caches).
      for (const [run, uri] of [[targets.floor, floor.uri], [targets.ours, m.uri(RW)], [targets.ours, direct]] as const) {
        await run(input(uri, 'insert', sizes.warmUpSeconds));
        await run(input(uri, 'find', sizes.warmUpSeconds));
      }
      await m.h.waitUntil(`${RO} finds every key`, 60_000, async () =>
        (await m.value(m.uri(RO), `return client.db('bench').collection('docs').countDocuments({ _id: { $lt: ${sizes.keys} } });`)) === sizes.keys);
      await targets.ours(input(m.uri(RO), 'find', sizes.warmUpSeconds));

      const got: Record<string, { loads: Load[]; load1: number[] }> = {};
      const measure = async (name: string, fn: () => Promise<Load>) => {
        const l = load1();
        const r = await fn();
        (got[name] ??= { loads: [], load1: [] }).loads.push(r);
        got[name].load1.push(l);
        log(`mongodb: ${name}: ${num(r.ms.length / r.seconds)} ops/s (load ${num(l)})`);
      };
      for (let i = 0; i < sizes.runs; i++) {
        for (const op of ['insert', 'find'] as const) {
          await measure(`floor ${op}`, () => targets.floor(input(floor.uri, op)));
          await measure(`rw ${op}`, () => targets.ours(input(m.uri(RW), op)));
          await measure(`pod ${op}`, () => targets.ours(input(direct, op)));
        }
      }
      log('mongodb: read scaling');
      for (let i = 0; i < sizes.runs; i++) {
        await measure('ro find', () => targets.ours(input(m.uri(RO), 'find')));
        await measure('rw find x2', () => targets.ours(input(m.uri(RW), 'find', sizes.seconds, 2 * CONCURRENCY)));
        const l = load1();
        const [rw, ro] = await Promise.all([targets.ours(input(m.uri(RW), 'find')), targets.ours(input(m.uri(RO), 'find'))]);
        (got['rw+ro find'] ??= { loads: [], load1: [] }).loads.push({ ...rw, ms: [...rw.ms, ...ro.ms], seconds: Math.max(rw.seconds, ro.seconds), ops: rw.ops + ro.ops });
        got['rw+ro find'].load1.push(l);
        log(`mongodb: rw+ro find: ${num(rw.ms.length / rw.seconds)} + ${num(ro.ms.length / ro.seconds)} ops/s`);
      }
      // No Service proxy on the path at all: the writer Deployment's FerretDB pointed at the
      // primary pod's own address (a bench-only change of its URL; the Deployment rolls), the
      // driver at a writer pod's address.
      const bypassProxy = async (): Promise<void> => {
        log('mongodb: the writer FerretDB pointed at the primary pod\'s address');
        const primaryIp = m.h.podIP(PRIMARY);
        const objects = (synthCluster() as any[]).map((o) => {
          if (o.kind !== 'Deployment' || o.metadata.name !== WRITER_DEPLOYMENT) return o;
          const copy = JSON.parse(JSON.stringify(o));
          const env = copy.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL');
          env.value = env.value.replace(`@${NAME}-pg-rw:`, `@${primaryIp}:`);
          return copy;
        });
        await m.h.apply([...objects, clientStatefulSet], { timeoutMs: 180_000 });
        const bypassWriter = m.ferretPods(WRITER_DEPLOYMENT)[0];
        const bypass = `mongodb://ferretdb:${encodeURIComponent(m.password())}@${m.h.podIP(bypassWriter)}:27017/?directConnection=true`;
        await targets.ours(input(bypass, 'insert', sizes.warmUpSeconds));
        await targets.ours(input(bypass, 'find', sizes.warmUpSeconds));
        for (let i = 0; i < sizes.runs; i++) {
          for (const op of ['insert', 'find'] as const) {
            await measure(`floor ${op}`, () => targets.floor(input(floor.uri, op)));
            await measure(`bypass ${op}`, () => targets.ours(input(bypass, op)));
          }
        }
      };
      try {
        await bypassProxy();
      } catch (e) {
        log(`mongodb: the rows without a Service proxy are left out: ${(e as Error).stack ?? String(e)}`);
      }
      return { got, floorSettings: floor.settings, writer };
    } finally {
      floor.stop();
    }
  });

  log('mongodb: booting a synchronousQuorum(1) cluster');
  const sync = await withMongo({ replicationMode: ReplicationMode.synchronousQuorum(1) }, async (m) => {
    const states = await m.pg.sql(PRIMARY, "SELECT string_agg(sync_state, ',' ORDER BY application_name) FROM pg_stat_replication");
    if (states !== 'quorum,quorum') throw new Error(`expected two quorum standbys, got ${states}`);
    await inPod(m, input(m.uri(RW), 'load'));
    await inPod(m, input(m.uri(RW), 'insert', sizes.warmUpSeconds));
    const loads: Load[] = [];
    const l: number[] = [];
    for (let i = 0; i < sizes.runs; i++) {
      l.push(load1());
      loads.push(await inPod(m, input(m.uri(RW), 'insert')));
      log(`mongodb: sync insert: ${num(loads[i].ms.length / loads[i].seconds)} ops/s`);
    }
    return pool(loads, l);
  });
  const loadAfter = os.loadavg();

  const f = (name: string): Figures => pool(lib.got[name].loads, lib.got[name].load1);
  const [floorInsert, rwInsert, podInsert, floorFind, rwFind, podFind] =
    ['floor insert', 'rw insert', 'pod insert', 'floor find', 'rw find', 'pod find'].map(f);
  const [roFind, rwFind2, bothFind] = ['ro find', 'rw find x2', 'rw+ro find'].map(f);
  const bypassed = lib.got['bypass find'] !== undefined;
  const lat = (x: Figures): string => `${num(x.p50)} / ${num(x.p99)}`;
  const loads = (...xs: Figures[]): string => `load1 ${xs.map((x) => x.load1.map((v) => num(v, 2)).join(',')).join(' vs ')}`;
  const runs = (a: Figures, b: Figures): string => `runs ${a.runsOpsPerS.map((v) => num(v)).join(',')} vs ${b.runsOpsPerS.map((v) => num(v)).join(',')} ops/s`;
  const T = `c=${CONCURRENCY}, ${sizes.seconds} s x${sizes.runs}`;
  const pair = (measure: string, ours: Figures, floor: Figures, note: string): Row[] => [
    row('mongodb', `${measure} ops/s, ${T}`, num(ours.opsPerS), num(floor.opsPerS), ratio(ours.opsPerS, floor.opsPerS), `${runs(ours, floor)}; ${loads(ours, floor)}`),
    row('mongodb', `${measure} latency p50 / p99 ms`, lat(ours), lat(floor), ratio(ours.p50, floor.p50),
      `p99 ratio ${ratio(ours.p99, floor.p99)}; ${note}`),
  ];
  const rows: Row[] = [
    ...pair('insertOne through NAME-rw (floor: bare)', rwInsert, floorInsert, `goal <= 1.1x; ${rwInsert.ops} vs ${floorInsert.ops} operations`),
    ...pair('findOne by _id through NAME-rw (floor: bare)', rwFind, floorFind, `goal <= 1.1x; ${rwFind.ops} vs ${floorFind.ops} operations; ${sizes.keys} documents`),
    ...pair('insertOne to a writer pod\'s address (floor: bare)', podInsert, floorInsert, 'no NAME-rw hop: the difference to the NAME-rw row is the harness\'s userspace Service proxy'),
    ...pair('findOne to a writer pod\'s address (floor: bare)', podFind, floorFind, 'no NAME-rw hop'),
    ...(bypassed ? [
      ...pair('insertOne, no Service proxy on the path (floor: bare)', f('bypass insert'), floorInsert,
        'driver to a writer pod\'s address, its FerretDB to the primary pod\'s address (a bench-only URL)'),
      ...pair('findOne, no Service proxy on the path (floor: bare)', f('bypass find'), floorFind, 'as above'),
    ] : []),
    row('mongodb', `findOne through NAME-ro, 2 standbys (floor: NAME-rw), ${T}`, num(roFind.opsPerS), num(rwFind.opsPerS), ratio(roFind.opsPerS, rwFind.opsPerS),
      `latency p50 / p99 ${lat(roFind)} vs ${lat(rwFind)} ms; ${loads(roFind, rwFind)}`),
    row('mongodb', `findOne NAME-rw c=${CONCURRENCY} + NAME-ro c=${CONCURRENCY} at once (floor: NAME-rw c=${2 * CONCURRENCY})`, num(bothFind.opsPerS), num(rwFind2.opsPerS),
      ratio(bothFind.opsPerS, rwFind2.opsPerS), `goal > 1x (NAME-ro adds read capacity); latency p50 / p99 ${lat(bothFind)} vs ${lat(rwFind2)} ms; ${loads(bothFind, rwFind2)}`),
    row('mongodb', `insertOne through NAME-rw, synchronousQuorum(1) (floor: async), ${T}`, num(sync.opsPerS), num(rwInsert.opsPerS), ratio(sync.opsPerS, rwInsert.opsPerS),
      `latency p50 / p99 ${lat(sync)} vs ${lat(rwInsert)} ms (p50 ratio ${ratio(sync.p50, rwInsert.p50)}); a fresh cluster; ${loads(sync, rwInsert)}`),
  ];
  return {
    section: 'mongodb',
    floor: 'the same FerretDB binary (one process on the host, the writer Deployment\'s URL parameters) on bare PostgreSQL 15 + DocumentDB of the same topology (initdb, 2 pg_basebackup standbys, async, TCP on 127.0.0.1, trust, only the settings DocumentDB needs), the driver on the host; measured alternately with the library\'s cluster. NAME-ro rows use NAME-rw as their floor; the sync row uses async',
    rows,
    data: {
      sizes,
      concurrency: CONCURRENCY,
      loadBefore,
      loadAfter,
      floorSettings: lib.floorSettings,
      writerPod: lib.writer,
      figures: Object.fromEntries(Object.keys(lib.got).map((k) => [k, f(k)])),
      sync,
    },
  };
}
