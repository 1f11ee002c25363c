import { Cluster, ClusterOptions, sampleWritability, writableOverlaps } from './index';
import { ConfigDelivery } from './volumes';

/*
 * Self-test of the opt-in fidelity features: per-pod ConfigMap delivery (delay, hold/release),
 * probe periods as synthesized, partitions that drop packets, and writability sampled in pods.
 * Hand-written objects; needs what the harness needs (root, iproute2, postgresql-15, curl).
 */

const NS = 'fid';
const SERVER = "require('net').createServer((s) => { s.on('error', () => {}); s.end(process.env.HOSTNAME + '\\n'); }).listen(8080)";

/** A 3-pod StatefulSet of TCP servers on 8080 mounting ConfigMap `conf`, and a Service `net`. */
function netObjects(value: string, probe?: object): object[] {
  const labels = { app: 'net' };
  return [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'conf', namespace: NS }, data: { value } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'net', namespace: NS }, spec: { selector: labels, ports: [{ port: 8080 }] } },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'net', namespace: NS },
      spec: {
        serviceName: 'net',
        replicas: 3,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{
              name: 'main',
              image: 'busybox',
              command: ['bash', '-c', `date +%s%3N > /tmp/started; exec ${process.execPath} -e "${SERVER}"`],
              volumeMounts: [{ name: 'conf', mountPath: '/etc/conf' }, { name: 'tmp', mountPath: '/tmp' }],
              readinessProbe: probe ?? { tcpSocket: { port: 8080 }, periodSeconds: 1, failureThreshold: 1 },
            }],
            volumes: [{ name: 'conf', configMap: { name: 'conf' } }, { name: 'tmp', emptyDir: {} }],
          },
        },
      },
    },
  ];
}

let c: Cluster | undefined;
afterEach(async () => {
  await c?.destroy();
  c = undefined;
});

async function start(objects: object[], options: ClusterOptions = {}): Promise<Cluster> {
  c = await Cluster.create(objects, { namespace: NS, ...options });
  await c.startStatefulSet('net');
  return c;
}

async function conf(pod: string): Promise<string> {
  return (await c!.exec(pod, 'main', ['cat', '/etc/conf/value'])).stdout;
}

/** Connects from `from` to `ip:port`: 'ok', 'refused', or 'timeout' (no answer in 3 s: dropped). */
async function tcp(from: string, ip: string, port = 8080): Promise<string> {
  const r = await c!.exec(from, 'main', ['timeout', '--foreground', '3', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port} && cat <&3`]);
  if (r.code === 124) return 'timeout';
  return r.code === 0 ? 'ok' : 'refused';
}

/** `curl` to the fake API server's /healthz: 'ok' or 'timeout'/'error <code>'. */
async function api(from: string): Promise<string> {
  const r = await c!.exec(from, 'main', ['bash', '-c', 'curl -sk --max-time 3 -o /dev/null "https://$KUBERNETES_SERVICE_HOST/healthz"']);
  if (r.code === 28) return 'timeout';
  return r.code === 0 ? 'ok' : `error ${r.code}`;
}

test('configDelivery: a pending delay is drawn per pod in the range, held pods wait for release', () => {
  const d = new ConfigDelivery({ minMs: 1000, maxMs: 5000 });
  const pods = Array.from({ length: 40 }, (_, i) => `p-${i}`);
  d.hold('p-0');
  expect(d.duePods(pods, 'v2', 0)).toEqual([]);
  const dueAt = new Map<string, number>();
  for (let t = 0; t <= 6000; t += 100) {
    for (const p of d.duePods(pods, 'v2', t)) {
      dueAt.set(p, t);
      d.rendered(p, 'v2');
    }
  }
  const times = [...dueAt.values()];
  expect(dueAt.has('p-0')).toBe(false);
  expect(Math.min(...times)).toBeGreaterThanOrEqual(1000);
  expect(Math.max(...times)).toBeLessThanOrEqual(5100);
  expect(new Set(times).size).toBeGreaterThan(3);
  d.release('p-0');
  expect(d.duePods(pods, 'v2', 6100)).toEqual(['p-0']);
  expect(() => new ConfigDelivery({ minMs: 5, maxMs: 1 })).toThrow(/minMs <= maxMs/);
});

test('configDelivery: pods see a ConfigMap change only after their delay, a held pod only after release', async () => {
  await start(netObjects('v1'), { configDelivery: { minMs: 8000, maxMs: 8000 } });
  c!.holdConfig('net-1');
  await c!.apply(netObjects('v2'));
  expect(c!.getConfigMap('conf')).toEqual({ value: 'v2' });
  expect(await conf('net-0')).toBe('v1');
  await c!.waitUntil('net-0 sees v2', 60_000, async () => (await conf('net-0')) === 'v2' || undefined);
  await c!.waitUntil('net-2 sees v2', 60_000, async () => (await conf('net-2')) === 'v2' || undefined);
  expect(await conf('net-1')).toBe('v1');
  c!.releaseConfig('net-1');
  await c!.waitUntil('net-1 sees v2', 60_000, async () => (await conf('net-1')) === 'v2' || undefined);
}, 180_000);

test("probeTiming 'synthesized': readiness runs every periodSeconds after initialDelaySeconds", async () => {
  const probe = { exec: { command: ['bash', '-c', 'date +%s%3N >> /tmp/probes'] }, periodSeconds: 4, initialDelaySeconds: 3 };
  await start(netObjects('v1', probe), { probeTiming: 'synthesized' });
  await c!.waitUntil('3 probes ran', 60_000, async () => (await c!.exec('net-0', 'main', ['cat', '/tmp/probes'])).stdout.trim().split('\n').length >= 3 || undefined);
  const started = Number((await c!.exec('net-0', 'main', ['cat', '/tmp/started'])).stdout);
  const runs = (await c!.exec('net-0', 'main', ['cat', '/tmp/probes'])).stdout.trim().split('\n').map(Number);
  expect(runs[0] - started).toBeGreaterThanOrEqual(2900);
  for (let i = 1; i < runs.length; i++) expect(runs[i] - runs[i - 1]).toBeGreaterThanOrEqual(3900);
}, 180_000);

test("partition from 'pods' drops (not refuses) pod and Service traffic both ways, keeps the API and probes; heal restores", async () => {
  await start(netObjects('v1'));
  const ip0 = c!.podIP('net-0');
  const ip2 = c!.podIP('net-2');
  expect(await tcp('net-1', ip0, 8081)).toBe('refused'); // control: a closed port refuses
  await c!.partition('net-0', { from: 'pods' });
  expect(await tcp('net-1', ip0)).toBe('timeout');
  expect(await tcp('net-1', ip0, 8081)).toBe('timeout');
  expect(await tcp('net-0', ip2)).toBe('timeout');
  expect(await tcp('net-0', c!.clusterIp('net'))).toBe('timeout');
  expect(await api('net-0')).toBe('ok');
  expect(await tcp('net-1', ip2)).toBe('ok');
  expect(c!.isReady('net-0')).toBe(true);
  // Through the Service: net-0 is still an endpoint (Ready), but the proxy's connection to it is
  // dropped, so every client connection lands on net-1 or net-2 (after a 3 s connect timeout).
  const viaService = `exec 3<>/dev/tcp/${c!.clusterIp('net')}/8080 && cat <&3`;
  for (let i = 0; i < 3; i++) {
    const r = await c!.exec('net-1', 'main', ['timeout', '--foreground', '8', 'bash', '-c', viaService]);
    expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^net-[12]\n$/) });
  }
  await c!.heal('net-0');
  expect(await tcp('net-1', ip0)).toBe('ok');
  expect(await tcp('net-0', ip2)).toBe('ok');
}, 180_000);

test("partition from 'api' cuts only the API server; 'all' cuts both; blackhole also fails the node's probes, and with outgoing nothing leaves", async () => {
  await start(netObjects('v1'));
  const ip1 = c!.podIP('net-1');
  await c!.partition('net-0', { from: 'api' });
  expect(await api('net-0')).toBe('timeout');
  expect(await api('net-1')).toBe('ok');
  expect(await tcp('net-0', ip1)).toBe('ok');
  await c!.partition('net-0', { from: 'all' });
  expect(await api('net-0')).toBe('timeout');
  expect(await tcp('net-0', ip1)).toBe('timeout');
  await c!.heal('net-0');
  expect(await api('net-0')).toBe('ok');
  await c!.blackhole('net-0');
  await c!.waitNotReady('net-0', 30_000);
  expect(await tcp('net-1', c!.podIP('net-0'))).toBe('timeout');
  // Its own packets leave (the answers never come back).
  expect(await tcp('net-0', ip1)).toBe('timeout');
  await c!.heal('net-0');
  await c!.waitReady('net-0', 30_000);
  // Both ways: nothing leaves (the route lookup fails at once), its own address stays local.
  await c!.blackhole('net-0', { outgoing: true });
  expect(await tcp('net-0', ip1)).toBe('refused');
  expect(await tcp('net-0', c!.podIP('net-0'))).toBe('ok');
  expect(await tcp('net-1', c!.podIP('net-0'))).toBe('timeout');
  await c!.heal('net-0');
  expect(await tcp('net-0', ip1)).toBe('ok');
}, 180_000);

test('writableOverlaps: windows where two pods had a writable sample', () => {
  const s = (pod: string, t: number, writable: boolean): { pod: string; t: number; writable: boolean } => ({ pod, t, writable });
  expect(writableOverlaps([s('a', 1000, true), s('b', 1049, true), s('b', 1060, false), s('a', 1120, true), s('b', 1130, false)]))
    .toEqual([{ t: 1000, pods: ['a', 'b'] }]);
  expect(writableOverlaps([s('a', 1000, true), s('b', 1050, true)])).toEqual([]);
});

const PG_RUN = `set -eu
D=/var/lib/postgresql/data/pgdata
[ -s "$D/PG_VERSION" ] || initdb -D "$D" -U postgres --auth=trust >/dev/null
chmod 0700 "$D"
exec postgres -D "$D" -c listen_addresses='' -c unix_socket_directories=/var/run/postgresql`;

test('sampleWritability samples in the pod every 50 ms and sees it turn read-only', async () => {
  const labels = { app: 'pg' };
  c = await Cluster.create([{
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'pg', namespace: NS },
    spec: {
      serviceName: 'pg',
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          securityContext: { runAsUser: 999, fsGroup: 999 },
          containers: [{
            name: 'postgres',
            image: 'postgres:15',
            command: ['bash', '-c', PG_RUN],
            readinessProbe: { exec: { command: ['pg_isready', '-h', '/var/run/postgresql'] }, periodSeconds: 1 },
            volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql/data' }],
          }],
        },
      },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'] } }],
    },
  }], { namespace: NS });
  await c.startStatefulSet('pg');
  const sampling = sampleWritability(c, ['pg-0'], 6000, { psqlArgs: ['-h', '/var/run/postgresql', '-U', 'postgres', '-d', 'postgres'] });
  await new Promise((r) => setTimeout(r, 3000));
  const alter = await c.exec('pg-0', 'postgres', ['psql', '-XAtq', '-h', '/var/run/postgresql', '-U', 'postgres',
    '-c', 'ALTER SYSTEM SET default_transaction_read_only = on', '-c', 'SELECT pg_reload_conf()']);
  expect(alter.stderr).toBe('');
  const samples = await sampling;
  expect(samples.length).toBeGreaterThan(20);
  expect(samples[0].writable).toBe(true);
  expect(samples[samples.length - 1].writable).toBe(false);
}, 180_000);
