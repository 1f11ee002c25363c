/**
 * Self-test of the harness's Deployment controller and Service proxy, on hand-written objects:
 * a tiny Node HTTP server that answers its pod name and turns unready when /state/unready exists.
 */
import * as path from 'path';
import { Cluster } from './index';

jest.setTimeout(120_000);

const NS = 'deploy-test';
const labels = { app: 'web' };

/** Answers GET / with the pod name; GET /ready is 503 while /state/unready exists. */
const SERVER_JS = `
const fs = require('fs');
require('http').createServer((req, res) => {
  if (req.url === '/ready') { res.writeHead(fs.existsSync('/state/unready') ? 503 : 200); res.end(); return; }
  res.end(process.env.HOSTNAME);
}).listen(8080);
`;

function webDeployment(name: string, replicas: number, version: string, strategy: object): object {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { ...labels, deployment: name } },
      strategy,
      template: {
        metadata: { labels: { ...labels, deployment: name }, annotations: { version } },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [{
            name: 'web',
            image: 'node:20',
            command: ['node', '-e', SERVER_JS],
            ports: [{ name: 'http', containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
            volumeMounts: [{ name: 'state', mountPath: '/state' }],
          }],
          volumes: [{ name: 'state', emptyDir: {} }],
        },
      },
    },
  };
}

function objects(version: string): object[] {
  return [
    webDeployment('web', 2, version, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }),
    webDeployment('single', 1, version, { type: 'Recreate' }),
    // Port 80 to the container port named http (8080), and port 81 to the number 8080.
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: NS },
      spec: { selector: { ...labels, deployment: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'num', port: 81, targetPort: 8080 }] },
    },
  ];
}

describe('harness: Deployments and Services through ClusterIPs', () => {
  let c: Cluster;
  const podsOf = (d: string) => c.pods().filter((p) => p.owner === `Deployment/${d}`);
  /** GET http://web:<port>/ from a pod, one connection per request. */
  const get = async (from: string, port: number): Promise<string> => {
    const r = await c.exec(from, 'web', ['curl', '-sS', '--max-time', '5', `http://web:${port}/`]);
    if (r.code !== 0) throw new Error(`curl web:${port} from ${from}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    c = await Cluster.create(objects('v1'), { fakeApi: false, images: { node: { path: [path.dirname(process.execPath)], env: {} } } });
    await c.startDeployment('web');
    await c.startDeployment('single');
  });
  afterAll(async () => c?.destroy());

  test('pods are named <deployment>-<pod-template-hash>-<random> and labelled with the hash', () => {
    const pods = podsOf('web');
    expect(pods).toHaveLength(2);
    for (const p of pods) expect(p.name).toMatch(/^web-[bcdfghjklmnpqrstvwxz2456789]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    expect(new Set(pods.map((p) => p.name.split('-')[1])).size).toBe(1);
  });

  test('a Service name resolves to its ClusterIP; targetPort by name and by number; connections alternate between endpoints', async () => {
    const from = podsOf('single')[0].name;
    expect(c.hostsFile(from)).toContain(`${c.clusterIp('web')}\tweb web.${NS} `);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await get(from, 80));
    expect([...seen].sort()).toEqual(podsOf('web').map((p) => p.name).sort());
    expect(podsOf('web').map((p) => p.name)).toContain(await get(from, 81));
  });

  test('an unready pod leaves the endpoints and gets no new connection; it comes back when ready', async () => {
    const from = podsOf('single')[0].name;
    const [a, b] = podsOf('web').map((p) => p.name);
    await c.exec(a, 'web', ['touch', '/state/unready']);
    await c.waitNotReady(a, 10_000);
    expect(c.endpoints('web')).toEqual([b]);
    for (let i = 0; i < 4; i++) expect(await get(from, 80)).toBe(b);
    await c.exec(a, 'web', ['rm', '/state/unready']);
    await c.waitReady(a, 10_000);
    expect(c.endpoints('web').sort()).toEqual([a, b].sort());
  });

  test('a deleted pod is replaced by a new pod (new name, new IP)', async () => {
    const [a] = podsOf('web');
    await c.deletePod(a.name);
    await c.waitUntil('two ready web pods again', 30_000, () => podsOf('web').filter((p) => p.ready).length === 2);
    expect(podsOf('web').map((p) => p.name)).not.toContain(a.name);
  });

  test('a template change through apply() rolls: RollingUpdate keeps 2 Ready pods throughout, Recreate never runs two at once', async () => {
    const before = podsOf('web').map((p) => p.name);
    let minReady = Infinity;
    let maxSingle = 0;
    const sampler = setInterval(() => {
      minReady = Math.min(minReady, podsOf('web').filter((p) => p.ready).length);
      maxSingle = Math.max(maxSingle, podsOf('single').length);
    }, 50);
    try {
      await c.apply(objects('v2'), { timeoutMs: 60_000 });
    } finally {
      clearInterval(sampler);
    }
    const after = podsOf('web');
    expect(after).toHaveLength(2);
    expect(after.every((p) => p.ready && !before.includes(p.name))).toBe(true);
    expect(new Set(after.map((p) => p.name.split('-')[1])).size).toBe(1);
    expect(minReady).toBeGreaterThanOrEqual(2); // maxUnavailable: 0
    expect(maxSingle).toBe(1); // Recreate: the old pod is gone before the new one exists
    expect(podsOf('single')).toHaveLength(1);
  });
});
