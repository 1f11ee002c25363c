/**
 * Section 5, what some settings cost: pgbench TPC-B-like (-c 4 -j 2, --random-seed=42) on
 * the primary of a synthesized cluster with 2 replicas and ReplicationMode.synchronousQuorum(1),
 * each measured 3 times for 15 s after a 5 s warm-up (the median is shown), against three floors
 * measured in the same run:
 *
 * 1. the library's cluster against bare PostgreSQL 15 of the same topology (initdb, two
 *    pg_basebackup standbys, synchronous_standby_names = 'ANY 1 (s1, s2)', everything else at
 *    PostgreSQL's defaults, Unix sockets in a temporary directory, no library script), in four
 *    variants (BareKind), the last of which streams through the harness's Service proxy; and
 *    the library's cluster once more with its standbys streaming to the primary pod's address
 *    (`direct`: no Service proxy on the path) against the floor with the library's settings;
 * 2. the same cluster with `postgresTls` (a throwaway CA and certificate made with openssl)
 *    against the cluster without TLS;
 * 3. the same cluster with `monitoring: {}` (the postgres_exporter sidecar, Debian's binary,
 *    scraped every 5 s in every pod during the run) against the cluster without, and against
 *    its own unscraped runs interleaved with the scraped ones (same cluster, same data, no order
 *    effect: the exporter costs nothing between scrapes); and the time of one scrape. 15 s runs
 *    on a shared 2-CPU machine can spread by more than 2%, so these TPS rows may not resolve the
 *    exporter's goal (< 2%): on the idle monitoring cluster, the CPU time
 *    of one scrape (bench/exporter.ts: the primary's exporter and PostgreSQL processes, scraped
 *    back to back, against windows as long without scrapes) and the share of a CPU it takes at
 *    the synthesized PodMonitor's interval can.
 *
 * The bare floor's processes are stopped in a `finally`, not by SIGINT (which only destroys the
 * harness's clusters): a Ctrl-C during the floor can leave them running in $TMPDIR/fdb-bench-bare-*.
 */
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { FerretDBCluster, FerretDBClusterProps, PostgresTls, ReplicationMode } from '../src';
import { log, median, num, Options, range, ratio, row, Row, SectionResult } from './common';
import { EXPORTER_BIN, idleScrapes, podMonitorIntervalSeconds, ScrapeCpu, scrapeCpu, scrapeLoop } from './exporter';
import { BootOptions, NAME, PRIMARY, pgbench, waitCaughtUp, withCluster } from './pg';
import { DOCUMENTDB_TEST_PARAMETERS } from '../test/e2e/documentdb';
import { PgCluster, replica, REPLICA_STS, RW_SERVICE } from '../test/e2e/fixture';
import { ServiceProxy } from '../test/e2e/harness/service-proxy';

type Variant = 'plain' | 'direct' | 'tls' | 'monitoring';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const EXPORTER_IMAGES = { 'quay.io/prometheuscommunity/postgres-exporter': { entrypoint: [EXPORTER_BIN] } };
const TLS_SECRET = 'fdb-pg-tls';
const PODS = [PRIMARY, replica(0), replica(1)];
const FLAGS = ['-c', '4', '-j', '2', '--random-seed=42'];
const SCRAPE_EVERY_S = 5;

interface Run {
  /** Median of the measured runs. */
  readonly tps: number;
  readonly runsTps: number[];
  readonly latencyMs: number;
  readonly transactions: number;
  readonly warmUpTps: number;
  readonly report: string;
}

interface Sizes {
  readonly runs: number;
  readonly scale: number;
  readonly seconds: number;
  readonly warmUpSeconds: number;
}

function parseReport(report: string): { tps: number; latencyMs: number; transactions: number } {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(report);
  const latency = /latency average = ([\d.]+) ms/.exec(report);
  const tx = /number of transactions actually processed: (\d+)/.exec(report);
  if (!tps || !latency || !tx) throw new Error(`cannot read the pgbench report:\n${report}`);
  return { tps: Number(tps[1]), latencyMs: Number(latency[1]), transactions: Number(tx[1]) };
}

/** The median run (by TPS) of several pgbench reports, and every run's TPS. */
function summarize(reports: string[]): Omit<Run, 'warmUpTps'> {
  const parsed = reports.map((r) => ({ ...parseReport(r), report: r })).sort((a, b) => a.tps - b.tps);
  const mid = parsed[Math.floor(parsed.length / 2)];
  return { ...mid, runsTps: parsed.map((p) => p.tps) };
}

function baseProps(): FerretDBClusterProps {
  return { replicas: 2, replicationMode: ReplicationMode.synchronousQuorum(1), storage: { size: '20Gi' } };
}

/** A throwaway CA and one server certificate it signs for `names`: the Secret's three keys. */
function throwawayCertificate(names: string[]): { [key: string]: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-bench-ca-'));
  const f = (name: string): string => path.join(dir, name);
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  };
  try {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=fdb-bench-ca', '-keyout', f('ca.key'), '-out', f('ca.crt')]);
    fs.writeFileSync(f('ext'), `subjectAltName=${names.map((d) => `DNS:${d}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${names[0]}`, '-keyout', f('tls.key'), '-out', f('tls.csr')]);
    openssl(['x509', '-req', '-in', f('tls.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-set_serial', '1001', '-days', '1',
      '-extfile', f('ext'), '-out', f('tls.crt')]);
    return Object.fromEntries(['tls.crt', 'tls.key', 'ca.crt'].map((k) => [k, fs.readFileSync(f(k), 'utf8')]));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type Pg = Parameters<typeof pgbench>[0];

/**
 * pgbench -i, a checkpoint, a warm-up, then the measured run. `idle` runs once the standbys
 * stream, before any load; `during` runs beside the measured run.
 */
interface Hooks {
  readonly idle?: (pg: Pg) => Promise<unknown>;
  readonly during?: (pg: Pg) => Promise<unknown>;
  /**
   * Run `during` beside every other run only, starting with one: the runs without it, interleaved
   * on the same cluster, are returned as `without` (a floor free of cluster-to-cluster and
   * order effects).
   */
  readonly alternate?: boolean;
}

async function measureLibrary(variant: Variant, sizes: Sizes, hooks: Hooks = {}): Promise<Run & { idle?: unknown; during?: unknown; without?: Run }> {
  let props = baseProps();
  let options: BootOptions = {};
  if (variant === 'tls') {
    props = { ...props, postgresTls: PostgresTls.fromSecret(TLS_SECRET) };
    const names = new FerretDBCluster(Testing.chart(), 'db', { name: NAME, ...props }).primary.tlsDnsNames;
    const secret = throwawayCertificate(names);
    options = { beforeStart: (pg) => pg.h.setSecret(TLS_SECRET, secret) };
  } else if (variant === 'monitoring') {
    if (!fs.existsSync(EXPORTER_BIN)) throw new Error(`${EXPORTER_BIN} is missing: install the Debian package prometheus-postgres-exporter`);
    props = { ...props, monitoring: {} };
    options = { harness: { images: EXPORTER_IMAGES } };
  }
  return withCluster(props, async (pg) => {
    const standbys = [replica(0), replica(1)];
    await pg.waitStreaming(PRIMARY, standbys);
    if (variant === 'direct') await streamDirect(pg, props, standbys);
    const states = await pg.sql(PRIMARY, "SELECT string_agg(sync_state, ',' ORDER BY application_name) FROM pg_stat_replication");
    if (states !== 'quorum,quorum') throw new Error(`expected two quorum standbys, got ${states}`);
    if (variant === 'tls') {
      const ssl = await pg.sql(PRIMARY, 'SELECT string_agg(s.ssl::text, \',\') FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)');
      if (ssl !== 'true,true') throw new Error(`expected both walsenders over TLS, got ${ssl}`);
    }
    const idle = await hooks.idle?.(pg);
    log(`costs: ${variant}: pgbench -i -s ${sizes.scale}`);
    await pgbench(pg, ['-i', '-s', String(sizes.scale), '-q'], 900_000);
    await pg.sql(PRIMARY, 'CHECKPOINT', 300_000);
    await waitCaughtUp(pg, standbys);
    const warmUp = parseReport(await pgbench(pg, [...FLAGS, '-T', String(sizes.warmUpSeconds)], 300_000));
    await waitCaughtUp(pg, standbys);
    log(`costs: ${variant}: warm-up ${num(warmUp.tps)} tps; measuring ${sizes.seconds} s`);
    const reports: string[] = [];
    const withoutReports: string[] = [];
    const during: unknown[] = [];
    for (let i = 0; i < sizes.runs * (hooks.alternate ? 2 : 1); i++) {
      const hooked = !hooks.alternate || i % 2 === 0;
      const beside = hooked ? hooks.during?.(pg) : undefined;
      const report = await pgbench(pg, [...FLAGS, '-T', String(sizes.seconds)], sizes.seconds * 1000 + 300_000);
      (hooked ? reports : withoutReports).push(report);
      if (hooked) during.push(await beside);
      await waitCaughtUp(pg, standbys);
    }
    const without = withoutReports.length > 0 ? { ...summarize(withoutReports), warmUpTps: warmUp.tps } : undefined;
    return { ...summarize(reports), warmUpTps: warmUp.tps, idle, during, without };
  }, options);
}

/**
 * The `direct` variant: the replica StatefulSet's pod template gains a `hostAliases` entry that
 * resolves the read-write Service's name to the primary pod's own address (a bench-only change;
 * the replicas roll), so the standbys stream, and their scripts ask the primary, with no Service
 * proxy on the path, as on a cluster where kube-proxy rewrites addresses in the kernel. Checked
 * on the primary: each walsender's client is a standby pod's address, not the ClusterIP (the
 * proxy connects from the ClusterIP).
 */
async function streamDirect(pg: PgCluster, props: FerretDBClusterProps, standbys: string[]): Promise<void> {
  const ip = pg.h.podIP(PRIMARY);
  log(`costs: direct: ${RW_SERVICE} resolves to ${PRIMARY}'s address ${ip} in the replica pods`);
  const objects = (pg.synth(props) as any[]).map((o) => {
    if (o.kind !== 'StatefulSet' || o.metadata.name !== REPLICA_STS) return o;
    const copy = JSON.parse(JSON.stringify(o));
    copy.spec.template.spec.hostAliases = [{ ip, hostnames: [RW_SERVICE] }];
    return copy;
  });
  await pg.h.apply(objects, { timeoutMs: 300_000 });
  await pg.h.waitUntil('the standbys stream from their pods\' own addresses', 300_000, async () => {
    const clients = await pg.sql(PRIMARY, "SELECT string_agg(host(client_addr), ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'");
    return clients === standbys.map((pod) => pg.h.podIP(pod)).join(',');
  });
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

/** One measured pgbench run on the bare primary; waits without blocking the event loop. */
function bareRun(dir: string, port: number, seconds: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const p = spawn('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pgbench`, '-h', dir, '-p', String(port), ...FLAGS, '-T', String(seconds), 'postgres'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += String(d); });
    p.stderr.on('data', (d) => { err += String(d); });
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`bare pgbench exit ${code}: ${err}`))));
  });
}

/**
 * How a bare floor differs from PostgreSQL's defaults. `old`: the first floor of this section
 * (Unix sockets everywhere, no data checksums). `equal`: what the library's pods do on those two
 * points: `initdb --data-checksums`, and the standbys stream over TCP (127.0.0.1) as a
 * REPLICATION LOGIN role authenticated with scram-sha-256. `settings`: `equal` plus the
 * library's own postgresql.conf (shared_preload_libraries with DocumentDB and pg_cron,
 * wal_log_hints, hot_standby_feedback, max_connections, ...; the paths and listen settings
 * excepted) and `CREATE EXTENSION documentdb` as the library's setup runs it. `proxied`:
 * `settings` with the standbys streaming through the harness's userspace Service proxy (the same
 * code, on 127.0.0.1), as the library's standbys stream through `NAME-pg-rw` on the harness.
 */
type BareKind = 'old' | 'equal' | 'settings' | 'proxied';

/** The library's settings for floor `settings`: what a synthesized pod's postgresql.conf holds, minus its paths. */
function librarySettings(dir: string, port: number): string[] {
  const skip = new Set(['listen_addresses', 'port', 'unix_socket_directories', 'hba_file', 'synchronous_standby_names']);
  const paths: { [name: string]: string } = { 'cron.host': dir, 'documentdb.localhost_connection_string': `host=${dir} port=${port}` };
  const settings = new FerretDBCluster(Testing.chart(), 'db', { name: NAME, ...baseProps(), parameters: DOCUMENTDB_TEST_PARAMETERS }).primary.settings;
  return settings.filter((x) => !skip.has(x.name)).map((x) => `${x.name} = '${(paths[x.name] ?? x.value).replace(/'/g, "''")}'`);
}

/**
 * A floor of row 1: bare PostgreSQL 15, a primary and two pg_basebackup standbys (s1, s2),
 * synchronous_standby_names = 'ANY 1 (s1, s2)', configured as `kind` says (BareKind), in a
 * temporary directory. The same pgbench runs on the host against the primary's Unix socket (as
 * the library's runs inside the primary pod over its socket).
 */
async function measureBare(sizes: Sizes, kind: BareKind): Promise<Run & { settings: string[]; kind: BareKind }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-bench-bare-'));
  fs.chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
  const port = 55000 + (process.pid % 1000);
  const nodes = [{ name: 'p', port }, { name: 's1', port: port + 1 }, { name: 's2', port: port + 2 }];
  const data = (name: string): string => path.join(dir, name);
  const tcp = kind !== 'old';
  const withSettings = kind === 'settings' || kind === 'proxied';
  const proxyPort = port + 10;
  const proxy = kind === 'proxied' ? await ServiceProxy.start(path.join(dir, 'proxy')) : undefined;
  proxy?.update([{ name: 'bare/primary', ip: '127.0.0.1', port: proxyPort, endpoints: [`127.0.0.1:${port}`] }]);
  await proxy?.synced();
  const password = `bench-${process.pid}-${Date.now()}`;
  const settings = [
    ...withSettings ? librarySettings(dir, port) : [],
    `port = ${port}`, `listen_addresses = '${tcp ? '127.0.0.1' : ''}'`, `unix_socket_directories = '${dir}'`,
    "synchronous_standby_names = 'ANY 1 (s1, s2)'",
  ];
  const started: string[] = [];
  const ctl = (name: string, action: 'start' | 'stop'): void => {
    asPostgres([`${PG_BIN}/pg_ctl`, '-D', data(name), '-w', '-t', '120', '-l', path.join(dir, `${name}.log`), action, ...(action === 'stop' ? ['-m', 'fast'] : [])]);
  };
  const psql = (query: string): string => asPostgres([`${PG_BIN}/psql`, '-XAtq', '-h', dir, '-p', String(port), '-d', 'postgres', '-c', query]).trim();
  const bench = (args: string[], timeoutMs: number): string => asPostgres([`${PG_BIN}/pgbench`, '-h', dir, '-p', String(port), ...args, 'postgres'], timeoutMs);
  try {
    // initdb's host rules for --auth-host cover replication from 127.0.0.1 too.
    asPostgres([`${PG_BIN}/initdb`, '-D', data('p'), '-U', 'postgres', '--auth-local=trust',
      ...tcp ? ['--auth-host=scram-sha-256', '--data-checksums'] : ['--auth-host=trust']]);
    fs.appendFileSync(data('p') + '/postgresql.conf', `\n${settings.join('\n')}\n`);
    ctl('p', 'start');
    started.push('p');
    // No standby acknowledges commits yet: these commit locally.
    if (tcp) psql(`SET synchronous_commit = local; CREATE ROLE replicator WITH LOGIN REPLICATION PASSWORD '${password}'`);
    if (withSettings) psql('SET synchronous_commit = local; CREATE EXTENSION IF NOT EXISTS documentdb CASCADE');
    for (const s of nodes.slice(1)) {
      asPostgres([`${PG_BIN}/pg_basebackup`, '-h', dir, '-p', String(port), '-D', data(s.name), '-X', 'stream', '-c', 'fast']);
      const conninfo = tcp
        ? `host=127.0.0.1 port=${proxy ? proxyPort : port} user=replicator password=${password} sslmode=disable application_name=${s.name}`
        : `host=${dir} port=${port} user=postgres application_name=${s.name}`;
      fs.appendFileSync(data(s.name) + '/postgresql.conf', `\nport = ${s.port}\nlisten_addresses = ''\nsynchronous_standby_names = ''\n`
        + `primary_conninfo = '${conninfo}'\n`);
      fs.writeFileSync(data(s.name) + '/standby.signal', '');
      execFileSync('chown', ['-R', 'postgres:postgres', data(s.name)]);
      ctl(s.name, 'start');
      started.push(s.name);
    }
    const deadline = Date.now() + 60_000;
    while (psql("SELECT string_agg(sync_state, ',' ORDER BY application_name) FROM pg_stat_replication WHERE replay_lsn IS NOT NULL") !== 'quorum,quorum') {
      if (Date.now() > deadline) throw new Error(`bare (${kind}) standbys s1, s2 not streaming as quorum standbys after 60 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
    if (tcp) {
      const via = psql("SELECT string_agg(coalesce(host(client_addr), 'socket') || '/' || usename, ',' ORDER BY application_name) FROM pg_stat_replication");
      if (via !== '127.0.0.1/replicator,127.0.0.1/replicator') throw new Error(`bare (${kind}): expected both standbys over TCP as replicator, got ${via}`);
    }
    if (proxy && !/bare\/primary: listening/.test(proxy.log())) throw new Error(`bare (${kind}): the proxy did not listen:\n${proxy.log()}`);
    const checksums = psql('SHOW data_checksums');
    if (checksums !== (tcp ? 'on' : 'off')) throw new Error(`bare (${kind}): data_checksums is ${checksums}`);
    log(`costs: bare (${kind}): pgbench -i -s ${sizes.scale}`);
    bench(['-i', '-s', String(sizes.scale), '-q'], 900_000);
    psql('CHECKPOINT');
    const warmUp = parseReport(bench([...FLAGS, '-T', String(sizes.warmUpSeconds)], 300_000));
    log(`costs: bare (${kind}): warm-up ${num(warmUp.tps)} tps; measuring ${sizes.seconds} s`);
    const reports: string[] = [];
    for (let i = 0; i < sizes.runs; i++) reports.push(await bareRun(dir, port, sizes.seconds));
    return { ...summarize(reports), warmUpTps: warmUp.tps, settings, kind };
  } finally {
    for (const name of started.reverse()) {
      try {
        ctl(name, 'stop');
      } catch (e) {
        log(`costs: bare (${kind}): stopping ${name}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    proxy?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** (max - min) / median of the runs, in %. */
function spread(run: Run): number {
  return ((Math.max(...run.runsTps) - Math.min(...run.runsTps)) / median(run.runsTps)) * 100;
}

export async function costsSection(opts: Options): Promise<SectionResult> {
  const sizes: Sizes = { runs: opts.quick ? 1 : 3, scale: opts.quick ? 4 : 16, seconds: opts.quick ? 5 : 15, warmUpSeconds: opts.quick ? 2 : 5 };
  const cpuWindow = { seconds: opts.quick ? 3 : 15, pairs: opts.quick ? 1 : 3 };
  const intervalS = podMonitorIntervalSeconds(baseProps());
  const nproc = os.availableParallelism();
  const bareOld = await measureBare(sizes, 'old');
  const bare = await measureBare(sizes, 'equal');
  const bareSettings = await measureBare(sizes, 'settings');
  const bareProxied = await measureBare(sizes, 'proxied');
  const plain = await measureLibrary('plain', sizes);
  const direct = await measureLibrary('direct', sizes);
  const tls = await measureLibrary('tls', sizes);
  const monitoring = await measureLibrary('monitoring', sizes, {
    idle: async (pg) => {
      await idleScrapes(pg, 3); // warm-up: the exporter's first scrapes open its connections
      const scrapes = await idleScrapes(pg, opts.quick ? 5 : 10);
      log(`costs: monitoring: CPU of ${PRIMARY}, ${cpuWindow.pairs} x (${cpuWindow.seconds} s idle, ${cpuWindow.seconds} s scraped back to back)`);
      const cpu = await scrapeCpu(pg, PRIMARY, cpuWindow.seconds, cpuWindow.pairs);
      return { scrapes, cpu, walFiles: Number(await pg.sql(PRIMARY, 'SELECT count(*) FROM pg_ls_waldir()')) };
    },
    during: (pg) => scrapeLoop(pg, PODS, sizes.seconds, SCRAPE_EVERY_S),
    alternate: true,
  });
  const unscraped = monitoring.without!;
  const { scrapes: idle, cpu, walFiles } = monitoring.idle as { scrapes: Array<{ s: number; bytes: number }>; cpu: ScrapeCpu; walFiles: number };
  const loaded = ((monitoring.during ?? []) as Array<Array<{ pod: string; s: number; bytes: number }>>).flat();
  const ms = (xs: Array<{ s: number }>): number[] => xs.map((x) => x.s * 1000);
  const overhead = 1 - monitoring.tps / plain.tps;
  const scrapeOverhead = 1 - monitoring.tps / unscraped.tps;
  const spreads = [spread(monitoring), spread(plain)];
  const pairedSpreads = [spread(monitoring), spread(unscraped)];
  const pairedResolution = sizes.runs < 2 ? 'one run each, no spread'
    : `the runs spread ${num(pairedSpreads[0], 2)}% and ${num(pairedSpreads[1], 2)}%${Math.max(...pairedSpreads) >= 2 ? ': cannot resolve 2%' : ''}`;
  const spreadText = `the runs spread ${num(spreads[0], 2)}% and ${num(spreads[1], 2)}%`;
  const resolution = sizes.runs < 2 ? 'one run each, no spread: see the CPU rows'
    : Math.max(...spreads) >= 2 ? `cannot resolve 2%: ${spreadText}; see the CPU rows` : spreadText;
  const T = `-s ${sizes.scale} -T ${sizes.seconds} x${sizes.runs}`;
  const lat = (a: Run, b: Run): string => `TPS ranges ${range(a.runsTps)} vs ${range(b.runsTps)}; latency avg ${num(a.latencyMs)} vs ${num(b.latencyMs)} ms`;
  const core = cpu.msPerScrape / (intervalS * 1000);
  const rows: Row[] = [
    row('costs', `TPS sync quorum ANY 1, 2 standbys (floor: bare PostgreSQL, equal), ${T}`, num(plain.tps), num(bare.tps), ratio(plain.tps, bare.tps),
      `${lat(plain, bare)}; floor: initdb --data-checksums + 2 pg_basebackup standbys over TCP with scram, defaults + ANY 1 (s1, s2)`),
    row('costs', 'TPS sync quorum: the same (floor: bare, old: sockets, no checksums)', num(plain.tps), num(bareOld.tps), ratio(plain.tps, bareOld.tps),
      `${lat(plain, bareOld)}; the floor of the earlier records: standbys on Unix sockets as postgres, no data checksums`),
    row('costs', 'TPS sync quorum: the same (floor: bare, equal + the library\'s settings)', num(plain.tps), num(bareSettings.tps), ratio(plain.tps, bareSettings.tps),
      `${lat(plain, bareSettings)}; the equal floor with the library's postgresql.conf (DocumentDB + pg_cron preloaded, wal_log_hints, ...) and CREATE EXTENSION documentdb: what remains is the pods (agent, probes, state sidecar, veth)`),
    row('costs', 'TPS bare: equal (floor: old) / equal + settings (floor: equal)', `${num(bare.tps)} / ${num(bareSettings.tps)}`, `${num(bareOld.tps)} / ${num(bare.tps)}`,
      `${num(bare.tps / bareOld.tps)}x / ${num(bareSettings.tps / bare.tps)}x`,
      `checksums + TCP/scram cost; the library's settings cost; TPS ranges ${range(bareOld.runsTps)}, ${range(bare.runsTps)}, ${range(bareSettings.runsTps)}`),
    row('costs', 'TPS sync quorum: the same (floor: bare, equal + settings, standbys through the userspace proxy)', num(plain.tps), num(bareProxied.tps),
      ratio(plain.tps, bareProxied.tps),
      `${lat(plain, bareProxied)}; the floor above with its standbys streaming through the harness's Service proxy on 127.0.0.1, as the library's stream through NAME-pg-rw here: what remains is the pods and the veth path`),
    row('costs', 'TPS sync quorum, standbys streaming to the primary pod\'s address (floor: bare, equal + settings)', num(direct.tps), num(bareSettings.tps),
      ratio(direct.tps, bareSettings.tps),
      `${lat(direct, bareSettings)}; the library's cluster with NAME-pg-rw resolved to the primary pod in the replica pods (hostAliases, bench-only): no Service proxy on the path; what remains is the pods (agent, probes, lease and state sidecars, veth)`),
    row('costs', 'TPS sync quorum: through NAME-pg-rw (floor: the same, standbys direct)', num(plain.tps), num(direct.tps), ratio(plain.tps, direct.tps),
      `the proxy's cost on the library's cluster; TPS ranges ${range(plain.runsTps)} vs ${range(direct.runsTps)}`),
    row('costs', 'TPS bare: the proxy\'s cost (floor: equal + settings)', num(bareProxied.tps), num(bareSettings.tps), ratio(bareProxied.tps, bareSettings.tps),
      `the same floor, standbys through the proxy against direct; TPS ranges ${range(bareProxied.runsTps)} vs ${range(bareSettings.runsTps)}`),
    row('costs', 'TPS with postgresTls (floor: the same without TLS)', num(tls.tps), num(plain.tps), ratio(tls.tps, plain.tps),
      `${lat(tls, plain)}; both walsenders over TLS (checked in pg_stat_ssl)`),
    row('costs', 'TPS with monitoring: {} (floor: the same without)', num(monitoring.tps), num(plain.tps), ratio(monitoring.tps, plain.tps),
      `overhead ${(overhead * 100).toFixed(1)}% (goal < 2%; ${resolution}); ${lat(monitoring, plain)}; every pod scraped every ${SCRAPE_EVERY_S} s`),
    row('costs', `TPS with monitoring: {}, scraped every ${SCRAPE_EVERY_S} s (floor: its unscraped runs, interleaved)`, num(monitoring.tps), num(unscraped.tps),
      ratio(monitoring.tps, unscraped.tps),
      `overhead ${(scrapeOverhead * 100).toFixed(1)}% (goal < 2%; ${pairedResolution}); ${lat(monitoring, unscraped)}; the same cluster, runs alternating scraped/unscraped`),
    row('costs', 'exporter scrape ms p50 idle / during pgbench', `${num(median(ms(idle)))} / ${num(median(ms(loaded)))}`, '-', '-',
      `curl of /metrics in the pod; idle ${idle.length} scrapes of the primary ${range(ms(idle))} ms, loaded ${loaded.length} (3 pods) ${range(ms(loaded))} ms; ${num((idle[0]?.bytes ?? NaN) / 1024)} KB`),
    row('costs', 'CPU ms/s, primary\'s exporter + postgres: scraped back to back (floor: idle)', num(cpu.busyMsPerS), num(cpu.idleMsPerS), ratio(cpu.busyMsPerS, cpu.idleMsPerS),
      `utime+stime, /proc/<pid>/stat; ${cpu.pairs.length} x (${cpu.windowSeconds} s idle, ${cpu.windowSeconds} s busy); ${cpu.scrapes} scrapes, ${num(cpu.gzipBytes / 1024)} KB gzipped; before pgbench -i (${walFiles} WAL files)`),
    row('costs', 'exporter CPU ms per scrape: (busy - idle) / scrapes', num(cpu.msPerScrape), '-', '-',
      `median of ${cpu.pairs.length}; range ${range(cpu.pairs.map((p) => p.msPerScrape))}`),
    row('costs', `exporter CPU at the PodMonitor's ${intervalS} s: % of 1 CPU / of ${nproc} CPUs`, `${num(core * 100)} / ${num((core / nproc) * 100)}`, '-', '-',
      `goal < 2%; one pod scraped every ${intervalS} s (the synthesized interval)`),
  ];
  return {
    section: 'costs',
    floor: 'TPS: bare PostgreSQL 15 of the same topology (initdb --data-checksums, 2 pg_basebackup standbys streaming over TCP as a scram-authenticated replication role, synchronous_standby_names = \'ANY 1 (s1, s2)\', defaults otherwise, pgbench on the primary\'s Unix socket, no library script) for the library\'s cluster, beside the old floor (Unix sockets, no checksums), the equal floor with the library\'s postgresql.conf, and that floor with its standbys streaming through the harness\'s userspace Service proxy on 127.0.0.1; the library\'s cluster with its standbys streaming to the primary pod\'s address (hostAliases, bench-only) against the floor with the library\'s settings, and the library\'s cluster without TLS and without monitoring for the TLS and monitoring rows. CPU: the same pod over windows of the same length without scrapes. The scrape time has no floor',
    rows,
    data: { sizes, pgbench: FLAGS.join(' '), bare, bareOld, bareSettings, bareProxied, plain, direct, tls, monitoring, idleScrapes: idle, loadedScrapes: loaded, scrapeEverySeconds: SCRAPE_EVERY_S, intervalS, nproc },
  };
}
