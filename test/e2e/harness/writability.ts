import type { Cluster } from './cluster';
import { sleep } from './util';

/** One sample taken inside a pod: the server's clock_timestamp() (ms) and whether it took writes. */
export interface WritabilitySample {
  readonly pod: string;
  readonly t: number;
  /** Not in recovery and `transaction_read_only` off. */
  readonly writable: boolean;
}

export interface SampleOptions {
  /** Container running PostgreSQL. Default 'postgres'. */
  readonly container?: string;
  /** psql connection arguments. Default: `-d postgres` (the container's socket and user). */
  readonly psqlArgs?: readonly string[];
  /** Interval of `\watch`, ms. Default 50. */
  readonly intervalMs?: number;
}

/**
 * Samples, from inside each pod, whether its PostgreSQL takes writes, every `intervalMs` for
 * `durationMs`: one psql session per pod runs `\watch` on the pod's socket (restarted when it
 * ends, as when the server restarts; re-exec'd when the pod is recreated). A pod whose server
 * does not answer has no samples for that time. Timestamps are the server's clock (all pods
 * share the host's). Resolves with every pod's samples in time order.
 */
export async function sampleWritability(c: Cluster, pods: readonly string[], durationMs: number,
  opts: SampleOptions = {}): Promise<WritabilitySample[]> {
  const intervalS = ((opts.intervalMs ?? 50) / 1000).toFixed(3);
  const query = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint || ' '"
    + " || (NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off')";
  const psql = ['psql', '-XAtq', ...(opts.psqlArgs ?? ['-d', 'postgres'])];
  // `timeout` bounds it all; the loop restarts psql when its session ends (server restart).
  const loop = 'while :; do printf "%s\\n" "$1" | "${@:2}" 2>/dev/null; sleep 0.05; done';
  const perPod = pods.map(async (pod) => {
    const end = Date.now() + durationMs;
    const out: WritabilitySample[] = [];
    while (Date.now() < end - 100) {
      const secs = ((end - Date.now()) / 1000).toFixed(1);
      const argv = ['timeout', secs, 'bash', '-c', loop, 'sampler', `${query} \\watch ${intervalS}`, ...psql];
      const r = await c.exec(pod, opts.container ?? 'postgres', argv, { timeoutMs: end - Date.now() + 10_000 });
      for (const line of r.stdout.split('\n')) {
        const m = /^(\d+) (true|false)$/.exec(line.trim());
        if (m) out.push({ pod, t: Number(m[1]), writable: m[2] === 'true' });
      }
      if (Date.now() < end - 100) await sleep(200);
    }
    return out;
  });
  return (await Promise.all(perPod)).flat().sort((a, b) => a.t - b.t);
}

/**
 * The windows of `windowMs` (aligned to multiples of it) in which two or more pods had a
 * writable sample: a pod counts as writable in a window if any of its samples there says so.
 */
export function writableOverlaps(samples: readonly WritabilitySample[], windowMs = 50): Array<{ t: number; pods: string[] }> {
  const windows = new Map<number, Set<string>>();
  for (const s of samples) {
    if (!s.writable) continue;
    const w = Math.floor(s.t / windowMs) * windowMs;
    const set = windows.get(w) ?? new Set<string>();
    set.add(s.pod);
    windows.set(w, set);
  }
  return [...windows].filter(([, p]) => p.size > 1).map(([t, p]) => ({ t, pods: [...p].sort() })).sort((a, b) => a.t - b.t);
}
