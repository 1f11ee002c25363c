/**
 * The postgres_exporter sidecar in the costs section: scrapes of its /metrics from inside a pod,
 * and what one scrape costs in CPU time.
 *
 * CPU accounting: the cumulative CPU time (utime + stime from /proc/<pid>/stat) of one pod's
 * exporter and of its PostgreSQL process tree, since the exporter's queries run in a backend.
 * The tree is every live `postgres` process plus the postmaster's cutime + cstime, which holds
 * the backends that exited (the probes' sessions, say): so the sum only grows, and a window's
 * difference is exactly what the tree and the exporter spent in it. Alternating windows of the
 * same length, idle (no scrapes: the floor) and busy (scraped back to back), give the CPU of one
 * scrape: (busy - idle at the same rate) / scrapes.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { FerretDBCluster, FerretDBClusterProps } from '../src';
import { log, median, num, sleep } from './common';
import { NAME, NOW_MS, PRIMARY, sh } from './pg';

export const EXPORTER_BIN = '/usr/bin/prometheus-postgres-exporter';
const EXPORTER_URL = 'http://127.0.0.1:9187/metrics';

/** One curl of the pod's exporter inside the pod: seconds, and the bytes of the answer. */
const SCRAPE = `curl -sS --fail --max-time 10 -o /dev/null -w '%{time_total} %{size_download}\\n' ${EXPORTER_URL}`;

type Pg = Parameters<typeof sh>[0];

/** Every pod's exporter scraped every `everyS` seconds for `seconds`: each scrape's time and size. */
export async function scrapeLoop(pg: Pg, pods: string[], seconds: number, everyS: number): Promise<Array<{ pod: string; s: number; bytes: number }>> {
  const count = Math.max(1, Math.floor(seconds / everyS));
  const script = `for i in $(seq ${count}); do ${SCRAPE}; sleep ${everyS}; done`;
  const outs = await Promise.all(pods.map((pod) => sh(pg, pod, script, [], seconds * 1000 + 60_000).then((out) => ({ pod, out }))));
  return outs.flatMap(({ pod, out }) => out.trim().split('\n').map((l) => {
    const [s, bytes] = l.split(' ').map(Number);
    return { pod, s, bytes };
  }));
}

/** Idle scrapes of the primary's exporter, one after the other. */
export async function idleScrapes(pg: Pg, n: number): Promise<Array<{ s: number; bytes: number }>> {
  const out = await sh(pg, PRIMARY, `for i in $(seq ${n}); do ${SCRAPE}; done`, [], 120_000);
  return out.trim().split('\n').map((l) => {
    const [s, bytes] = l.split(' ').map(Number);
    return { s, bytes };
  });
}

/** The scrape interval of the `<name>-postgresql` PodMonitor the library synthesizes for `props`, in seconds. */
export function podMonitorIntervalSeconds(props: FerretDBClusterProps): number {
  const chart = Testing.chart();
  new FerretDBCluster(chart, 'db', { name: NAME, ...props, monitoring: { ...props.monitoring, podMonitor: true } });
  const monitor = Testing.synth(chart).find((o) => o.kind === 'PodMonitor' && o.metadata?.name === `${NAME}-postgresql`);
  const interval = monitor?.spec?.podMetricsEndpoints?.[0]?.interval;
  const m = /^(\d+)s$/.exec(String(interval));
  if (!m) throw new Error(`cannot read the PodMonitor ${NAME}-postgresql's interval (got ${String(interval)})`);
  return Number(m[1]);
}

interface Stat {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  /** utime + stime, clock ticks. */
  readonly own: number;
  /** cutime + cstime: children waited for, clock ticks. */
  readonly children: number;
}

/** A /proc/<pid>/stat line (`comm` may hold spaces and parentheses: fields follow the last ")"). */
function parseStat(line: string): Stat {
  const close = line.lastIndexOf(')');
  const f = line.slice(close + 2).split(' '); // f[0] is field 3 (state)
  return {
    pid: Number(line.slice(0, line.indexOf(' '))),
    comm: line.slice(line.indexOf('(') + 1, close),
    ppid: Number(f[1]),
    own: Number(f[11]) + Number(f[12]),
    children: Number(f[13]) + Number(f[14]),
  };
}

/** The pod clock (ms), then every process of the container (its own PID namespace). */
const STATS = `${NOW_MS}; cat /proc/[0-9]*/stat 2>/dev/null; true`;
/** How the kernel names the exporter (comm: the first 15 bytes of the file name). */
const EXPORTER_COMM = path.basename(EXPORTER_BIN).slice(0, 15);
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

interface CpuSample {
  readonly atMs: number;
  readonly ticks: number;
  readonly postgresProcesses: number;
}

/** The exporter's and the PostgreSQL tree's cumulative CPU in `pod` (two execs, one per container). */
async function cpuSample(pg: Pg, pod: string): Promise<CpuSample> {
  const run = async (container: string): Promise<{ atMs: number; stats: Stat[] }> => {
    const r = await pg.h.exec(pod, container, ['bash', '-c', STATS], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`reading /proc in ${pod}/${container} failed (exit ${r.code}): ${r.stderr}`);
    const [first, ...rest] = r.stdout.trim().split('\n');
    return { atMs: Number(first), stats: rest.filter((l) => l.length > 0).map(parseStat) };
  };
  const [postgres, metrics] = await Promise.all([run('postgres'), run('metrics')]);
  const tree = postgres.stats.filter((s) => s.comm === 'postgres');
  const pids = new Set(tree.map((s) => s.pid));
  const postmaster = tree.filter((s) => !pids.has(s.ppid));
  const exporter = metrics.stats.filter((s) => s.comm === EXPORTER_COMM);
  if (postmaster.length !== 1 || exporter.length !== 1) {
    throw new Error(`${pod}: expected one postmaster and one exporter, found ${postmaster.length} and ${exporter.length}`);
  }
  const ticks = tree.reduce((sum, s) => sum + s.own, 0) + postmaster[0].children + exporter[0].own + exporter[0].children;
  return { atMs: postgres.atMs, ticks, postgresProcesses: tree.length };
}

/** One window: its length (pod clock), the CPU spent in it, and the scrapes made. */
export interface CpuWindow {
  readonly ms: number;
  readonly cpuMs: number;
  readonly scrapes: number;
  readonly postgresProcesses: number;
}

async function cpuWindow(pg: Pg, pod: string, during: () => Promise<number>): Promise<CpuWindow> {
  const a = await cpuSample(pg, pod);
  const scrapes = await during();
  const b = await cpuSample(pg, pod);
  return { ms: b.atMs - a.atMs, cpuMs: ((b.ticks - a.ticks) * 1000) / TICKS_PER_S, scrapes, postgresProcesses: b.postgresProcesses };
}

/** Scrapes the pod's exporter one after the other for `ms` (gzip, as Prometheus asks); prints how many, and the last size. */
const BACK_TO_BACK = `
  end=$(( $(${NOW_MS}) + $1 )); n=0
  while [ "$(${NOW_MS})" -lt "$end" ]; do
    size=$(curl -sS --fail --max-time 10 -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' ${EXPORTER_URL}) || exit 1
    n=$((n + 1))
  done
  echo "$n $size"`;

export interface ScrapeCpu {
  readonly windowSeconds: number;
  readonly pairs: Array<{ idle: CpuWindow; busy: CpuWindow; msPerScrape: number }>;
  /** Median over the pairs of (busy - idle at the same rate) / scrapes. */
  readonly msPerScrape: number;
  readonly idleMsPerS: number;
  readonly busyMsPerS: number;
  readonly scrapes: number;
  readonly gzipBytes: number;
}

/**
 * `pairs` pairs of windows of `seconds` on the idle `pod`: first idle (the floor), then scraped back
 * to back from inside the pod (curl's own CPU is not counted: it is not the exporter's).
 */
export async function scrapeCpu(pg: Pg, pod: string, seconds: number, pairs: number): Promise<ScrapeCpu> {
  let gzipBytes = NaN;
  const out: ScrapeCpu['pairs'] = [];
  for (let i = 0; i < pairs; i++) {
    const idle = await cpuWindow(pg, pod, () => sleep(seconds * 1000).then(() => 0));
    const busy = await cpuWindow(pg, pod, async () => {
      const [n, size] = (await sh(pg, pod, BACK_TO_BACK, [String(seconds * 1000)], seconds * 1000 + 60_000)).trim().split(' ').map(Number);
      gzipBytes = size;
      return n;
    });
    const msPerScrape = (busy.cpuMs - (idle.cpuMs / idle.ms) * busy.ms) / busy.scrapes;
    log(`costs: monitoring: CPU idle ${num(idle.cpuMs)} ms in ${num(idle.ms / 1000)} s; busy ${num(busy.cpuMs)} ms in ${num(busy.ms / 1000)} s, ${busy.scrapes} scrapes: ${num(msPerScrape)} ms per scrape`);
    out.push({ idle, busy, msPerScrape });
  }
  const rate = (ws: CpuWindow[]): number => ws.reduce((s, w) => s + w.cpuMs, 0) / (ws.reduce((s, w) => s + w.ms, 0) / 1000);
  return {
    windowSeconds: seconds,
    pairs: out,
    msPerScrape: median(out.map((p) => p.msPerScrape)),
    idleMsPerS: rate(out.map((p) => p.idle)),
    busyMsPerS: rate(out.map((p) => p.busy)),
    scrapes: out.reduce((s, p) => s + p.busy.scrapes, 0),
    gzipBytes,
  };
}
