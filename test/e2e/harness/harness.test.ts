import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster } from './index';
import { reapStaleNamespaces } from './netns';
import { liveHarnessIds, registerHarness, releaseHarness } from './volumes';

/*
 * Self-test of the e2e harness with hand-written objects (not the library): real PostgreSQL 15
 * in two StatefulSet pods, and a Job talking to the fake API server with curl.
 * Needs root, iproute2, util-linux and postgresql-15; never skips.
 */

const NS = 'e2e';
const PGDATA = '/var/lib/postgresql/data/pgdata';

const RUN_SH = `#!/bin/bash
set -euo pipefail
echo "starting $POD_NAME ip=$POD_IP"
rm -f /var/run/postgresql/kill-me
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
  initdb -D "${PGDATA}" -U postgres --auth=trust >/dev/null
  # TEST-ONLY: trust everybody on the pod network.
  echo "host all all 0.0.0.0/0 trust" >> "${PGDATA}/pg_hba.conf"
fi
# kubelet's fsGroup handling makes the data directory group-writable: PostgreSQL wants 0700.
chmod 0700 "${PGDATA}"
exec postgres -D "${PGDATA}" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
`;

const MAKE_SECRET_SH = `#!/bin/sh
set -eu
SA=/var/run/secrets/kubernetes.io/serviceaccount
NS=$(cat $SA/namespace)
TOKEN=$(cat $SA/token)
API="https://kubernetes.default.svc:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$NS/secrets"
PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \\n')
BODY='{"apiVersion":"v1","kind":"Secret","metadata":{"name":"generated"},"stringData":{"password":"'$PASSWORD'"}}'
code=$(curl -sS -o /tmp/out.json -w '%{http_code}' --cacert $SA/ca.crt -H "Authorization: Bearer $TOKEN" \\
  -H 'Content-Type: application/json' -X POST --data "$BODY" "$API")
echo "POST $code"
cat /tmp/out.json; echo
get=$(curl -sS -o /dev/null -w '%{http_code}' --cacert $SA/ca.crt -H "Authorization: Bearer $TOKEN" "$API/generated")
echo "GET $get"
case $code in
  201) echo created ;;
  409) echo "already exists: fine" ;;
  *) exit 1 ;;
esac
`;

function pgObjects(greeting: string): object[] {
  const labels = { app: 'pg' };
  return [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pg-scripts', namespace: NS }, data: { 'run.sh': RUN_SH, 'greeting.txt': greeting } },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'creds', namespace: NS },
      data: { user: Buffer.from('app').toString('base64') },
      stringData: { password: 's3cret' },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'pg-hl', namespace: NS }, spec: { clusterIP: 'None', selector: labels, ports: [{ port: 5432 }] } },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'pg-primary', namespace: NS },
      spec: { selector: { ...labels, 'statefulset.kubernetes.io/pod-name': 'pg-0' }, ports: [{ port: 5432, targetPort: 'pg' }] },
    },
    { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'never-run', namespace: NS }, spec: {} },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'pg', namespace: NS },
      spec: {
        serviceName: 'pg-hl',
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 10,
            securityContext: { runAsUser: 999, runAsGroup: 999, fsGroup: 999, runAsNonRoot: true },
            containers: [{
              name: 'postgres',
              image: 'postgres:15',
              command: ['bash', '/scripts/run.sh'],
              ports: [{ name: 'pg', containerPort: 5432 }],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'POD_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
                { name: 'DB_USER', valueFrom: { secretKeyRef: { name: 'creds', key: 'user' } } },
                { name: 'MISSING', valueFrom: { secretKeyRef: { name: 'nope', key: 'x', optional: true } } },
                { name: 'GREETING', value: 'hello-$(POD_NAME)' },
                { name: 'ESCAPED', value: '$$(POD_NAME)' },
              ],
              volumeMounts: [
                { name: 'data', mountPath: '/var/lib/postgresql/data' },
                { name: 'scripts', mountPath: '/scripts', readOnly: true },
                { name: 'creds', mountPath: '/etc/creds', readOnly: true },
                { name: 'run', mountPath: '/var/run/postgresql' },
                { name: 'tmp', mountPath: '/tmp' },
                { name: 'late', mountPath: '/etc/late', readOnly: true },
              ],
              readinessProbe: { exec: { command: ['pg_isready', '-h', '/var/run/postgresql'] }, periodSeconds: 1, failureThreshold: 1 },
              livenessProbe: { exec: { command: ['bash', '-c', '! test -e /var/run/postgresql/kill-me'] }, periodSeconds: 1, failureThreshold: 2 },
              lifecycle: { preStop: { exec: { command: ['touch', '/var/run/postgresql/prestop-ran'] } } },
            }],
            volumes: [
              { name: 'scripts', configMap: { name: 'pg-scripts', defaultMode: 0o555 } },
              { name: 'creds', secret: { secretName: 'creds', defaultMode: 0o400 } },
              { name: 'run', emptyDir: {} },
              { name: 'tmp', emptyDir: {} },
              { name: 'late', secret: { secretName: 'late', optional: true } },
            ],
          },
        },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'] } }],
      },
    },
  ];
}

function jobObjects(): object[] {
  const meta = { name: 'maker', namespace: NS };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta, automountServiceAccountToken: false },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: meta,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'maker' },
      subjects: [{ kind: 'ServiceAccount', name: 'maker' }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, data: { 'make-secret.sh': MAKE_SECRET_SH } },
    {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: meta,
      spec: {
        backoffLimit: 2,
        template: {
          spec: {
            serviceAccountName: 'maker',
            automountServiceAccountToken: true,
            restartPolicy: 'OnFailure',
            securityContext: { runAsUser: 100, runAsGroup: 101, fsGroup: 101 },
            containers: [{
              name: 'make',
              image: 'curlimages/curl:8.13.0',
              command: ['sh', '/scripts/make-secret.sh'],
              volumeMounts: [{ name: 'script', mountPath: '/scripts', readOnly: true }, { name: 'tmp', mountPath: '/tmp' }],
            }],
            volumes: [{ name: 'script', configMap: { name: 'maker', defaultMode: 0o444 } }, { name: 'tmp', emptyDir: {} }],
          },
        },
      },
    },
  ];
}

function psql(c: Cluster, pod: string, host: string, sql: string): Promise<string> {
  return c.exec(pod, 'postgres', ['psql', '-h', host, '-U', 'postgres', '-Atc', sql], { timeoutMs: 10_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`psql on ${pod} -> ${host} failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  });
}

const POSTGRES_UID = execFileSync('id', ['-u', 'postgres']).toString().trim();
const POSTGRES_GID = execFileSync('id', ['-g', 'postgres']).toString().trim();

function netnsList(): string {
  return execFileSync('ip', ['netns', 'list']).toString();
}

describe('harness: StatefulSet of real PostgreSQL pods', () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await Cluster.create(pgObjects('v1'));
    await c.startStatefulSet('pg', { timeoutMs: 40_000 });
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  }, 30_000);

  test('both pods ready, on their own network namespace, with env, hostname and user mapped', async () => {
    expect(c.isReady('pg-0') && c.isReady('pg-1')).toBe(true);
    expect(c.podIP('pg-0')).not.toEqual(c.podIP('pg-1'));
    const r = await c.exec('pg-1', 'postgres', ['bash', '-c',
      'echo "$POD_NAME|$POD_IP|$POD_NS|$NODE|$DB_USER:$DB_PASSWORD|${MISSING-unset}|$GREETING|$ESCAPED|$(hostname)|$(id -u)|$HOSTNAME"']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`pg-1|${c.podIP('pg-1')}|${NS}|node-1|app:s3cret|unset|hello-pg-1|$(POD_NAME)|pg-1|${POSTGRES_UID}|pg-1`);
    expect(c.logs('pg-1', 'postgres')).toContain('starting pg-1');
    expect(c.events().join('\n')).toContain('not run: DaemonSet');
  });

  test('DNS: pod records, headless and ClusterIP Services; psql across pods', async () => {
    expect(await psql(c, 'pg-1', 'pg-0.pg-hl', 'select host(inet_server_addr())')).toBe(c.podIP('pg-0'));
    expect(await psql(c, 'pg-1', `pg-primary.${NS}.svc.cluster.local`, 'select host(inet_server_addr())')).toBe(c.podIP('pg-0'));
    expect(await psql(c, 'pg-0', 'pg-1.pg-hl', 'select host(inet_server_addr())')).toBe(c.podIP('pg-1'));
    expect(c.endpoints('pg-hl')).toEqual(['pg-0', 'pg-1']);
    expect(c.endpoints('pg-primary')).toEqual(['pg-0']);
    // A ClusterIP Service's name is its ClusterIP; a headless one's is its endpoints.
    expect(c.hostsFile('pg-1')).toContain(`${c.clusterIp('pg-primary')}\tpg-primary pg-primary.${NS} `);
    expect(c.hostsFile('pg-1')).toContain(`${c.podIP('pg-0')}\tpg-hl pg-hl.${NS} `);
  });

  test('volumes: configMap/secret files (mode, fsGroup, read-only), update through apply()', async () => {
    const r = await c.exec('pg-0', 'postgres', ['bash', '-c',
      'cat /etc/creds/password; echo; stat -L -c "%a %u %g" /etc/creds/password; cat /scripts/greeting.txt; echo; touch /scripts/x 2>&1 || true']);
    expect(r.stdout).toContain(`s3cret\n440 0 ${POSTGRES_GID}\nv1\n`);
    expect(r.stdout).toContain('Read-only file system');
    await c.apply(pgObjects('v2'));
    await c.waitUntil('greeting v2 in pg-0', 5000, async () =>
      (await c.exec('pg-0', 'postgres', ['cat', '/scripts/greeting.txt'])).stdout === 'v2');
  });

  test('a Secret created later appears in an optional secret volume', async () => {
    expect((await c.exec('pg-0', 'postgres', ['ls', '/etc/late'])).stdout).toBe('');
    c.setSecret('late', { token: 'abc' });
    await c.waitUntil('late secret file', 5000, async () =>
      (await c.exec('pg-0', 'postgres', ['cat', '/etc/late/token'])).stdout === 'abc');
  });

  test('restartPolicy Always: a container whose process exits is restarted and counted', async () => {
    expect(c.restarts('pg-0', 'postgres')).toBe(0);
    const stop = await c.exec('pg-0', 'postgres', ['pg_ctl', 'stop', '-W', '-D', PGDATA, '-m', 'fast']);
    expect(stop.code).toBe(0);
    await c.waitUntil('pg-0 restart', 15_000, () => c.restarts('pg-0', 'postgres') === 1);
    await c.waitReady('pg-0', 20_000);
  }, 40_000);

  test('liveness failure restarts the container (preStop runs)', async () => {
    const before = c.restarts('pg-1', 'postgres');
    await c.exec('pg-1', 'postgres', ['touch', '/var/run/postgresql/kill-me']);
    await c.waitUntil('pg-1 liveness restart', 20_000, () => c.restarts('pg-1', 'postgres') === before + 1);
    await c.waitReady('pg-1', 20_000);
    expect((await c.exec('pg-1', 'postgres', ['test', '-e', '/var/run/postgresql/prestop-ran'])).code).toBe(0);
    expect(c.events().join('\n')).toMatch(/pg-1\/postgres: liveness probe failed/);
  }, 45_000);

  test('deletePod keeps the PVC, wipes emptyDirs; Services follow readiness', async () => {
    await psql(c, 'pg-0', '/var/run/postgresql', 'create table kept(v int); insert into kept values (42)');
    await c.exec('pg-0', 'postgres', ['touch', '/var/run/postgresql/ephemeral']);
    const oldIp = c.podIP('pg-0');
    await c.deletePod('pg-0', { recreate: false });
    expect(c.pods().map((p) => p.name)).toEqual(['pg-1']);
    // The name still resolves (to the ClusterIP) but, with no endpoint, connections are refused.
    const lookup = await c.exec('pg-1', 'postgres', ['getent', 'hosts', 'pg-primary']);
    expect(lookup.stdout).toContain(c.clusterIp('pg-primary'));
    const refused = await c.exec('pg-1', 'postgres', ['psql', '-h', 'pg-primary', '-U', 'postgres', '-Atc', 'select 1']);
    expect(refused).toMatchObject({ code: 2, stderr: expect.stringMatching(/Connection refused/) });
    expect(fs.existsSync(path.join(c.volumePath('pg-0', 'data'), 'pgdata', 'PG_VERSION'))).toBe(true);
    await c.startPod('pg-0');
    await c.waitReady('pg-0', 30_000);
    expect(c.podIP('pg-0')).not.toBe(oldIp);
    expect(await psql(c, 'pg-1', 'pg-primary', 'select v from kept')).toBe('42');
    const ls = await c.exec('pg-0', 'postgres', ['ls', '/var/run/postgresql']);
    expect(ls.stdout).not.toContain('ephemeral');
  }, 60_000);

  test('wipeVolume empties the PVC (a lost volume): initdb again', async () => {
    await psql(c, 'pg-1', '/var/run/postgresql', 'create table gone(v int)');
    await c.deletePod('pg-1', { recreate: false, graceSeconds: 5 });
    expect(() => c.wipeVolume('pg-0', 'data')).toThrow(/running/);
    c.wipeVolume('pg-1', 'data');
    expect(fs.existsSync(c.volumePath('pg-1', 'data'))).toBe(false);
    await c.startPod('pg-1');
    await c.waitReady('pg-1', 30_000);
    expect(await psql(c, 'pg-1', '/var/run/postgresql', "select count(*) from pg_tables where tablename = 'gone'")).toBe('0');
  }, 60_000);

  test('scale down from the highest ordinal, then up again', async () => {
    await c.scale('pg', 1, { timeoutMs: 30_000 });
    expect(c.pods().map((p) => p.name)).toEqual(['pg-0']);
    expect(c.endpoints('pg-hl')).toEqual(['pg-0']);
    await c.scale('pg', 2, { timeoutMs: 30_000 });
    expect(c.isReady('pg-1')).toBe(true);
    expect(c.endpoints('pg-hl')).toEqual(['pg-0', 'pg-1']);
  }, 60_000);

  test('destroy leaves no process, network namespace or file behind', async () => {
    const pids = c.processIds();
    const pidNs = (pid: number | string): string => {
      try {
        return fs.readlinkSync(`/proc/${pid}/ns/pid`);
      } catch {
        return '';
      }
    };
    // This harness's containers, identified by their PID namespaces (other harnesses may run).
    const ours = new Set(pids.map(pidNs).filter((n) => n !== '' && n !== pidNs('self')));
    const postgresPids = (): string[] => {
      try {
        return execFileSync('pgrep', ['-u', 'postgres', 'postgres']).toString().split('\n').filter((p) => p !== '');
      } catch {
        return [];
      }
    };
    expect(postgresPids().filter((p) => ours.has(pidNs(p))).length).toBeGreaterThanOrEqual(4);
    const names = c.netnsNames;
    expect(names.length).toBe(3);
    const root = c.root;
    // A process is its pid and its start time: pids wrap (pid_max 32768 here) and a busy machine
    // reuses them within seconds.
    const startTime = (pid: number | string): string | undefined => {
      try {
        return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[19];
      } catch {
        return undefined;
      }
    };
    const started = new Map(pids.map((p) => [p, startTime(p)]));
    expect([...started.values()].filter((t) => t === undefined)).toEqual([]);
    await c.destroy();
    await c.destroy();
    expect(pids.filter((p) => startTime(p) === started.get(p))).toEqual([]);
    expect(postgresPids().filter((p) => ours.has(pidNs(p)))).toEqual([]);
    const ns = netnsList();
    for (const n of names) expect(ns).not.toContain(n);
    expect(fs.existsSync(root)).toBe(false);
  }, 30_000);
});

describe('harness: cleanup of what killed harnesses left behind', () => {
  const dead = 'fdbe2e-d0d0d0-selftest';
  const starting = 'fdbe2e-e1e1e1-selftest';
  afterAll(() => {
    releaseHarness('e1e1e1');
    for (const n of netnsList().split('\n').map((l) => l.split(' ')[0]).filter((l) => l === dead || l === starting)) {
      execFileSync('ip', ['netns', 'del', n]);
    }
  });

  test('a dead harness\'s namespace is removed; one of a harness that registers and creates it while another reaps (another jest worker starting) is kept', () => {
    execFileSync('ip', ['netns', 'add', dead]);
    // The race: the live harnesses were read, then another harness registered and created its
    // namespace. Listing the namespaces before reading the live harnesses makes it harmless.
    reapStaleNamespaces(() => {
      const live = liveHarnessIds();
      registerHarness('e1e1e1');
      execFileSync('ip', ['netns', 'add', starting]);
      return live;
    });
    const after = netnsList();
    expect(after).not.toContain(dead);
    expect(after).toContain(starting);
  });
});

describe('harness: Job against the fake API server', () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await Cluster.create(jobObjects());
  }, 30_000);

  afterAll(async () => {
    await c?.destroy();
  }, 30_000);

  test('creates a Secret (201), a second run gets 409 and succeeds; RBAC denies GET', async () => {
    const first = await c.runJob('maker', { timeoutMs: 20_000 });
    expect(first.logs).toContain('POST 201');
    expect(first.succeeded).toBe(true);
    expect(first.logs).toContain('GET 403');
    const password = c.getSecret('generated')?.password;
    expect(password).toMatch(/^[0-9a-f]{24}$/);
    const second = await c.runJob('maker', { timeoutMs: 20_000 });
    expect(second.succeeded).toBe(true);
    expect(second.logs).toContain('POST 409');
    expect(second.logs).toContain('AlreadyExists');
    expect(c.getSecret('generated')?.password).toBe(password);
    const users = new Set(c.apiRequests().map((r) => r.user));
    expect([...users]).toEqual([`system:serviceaccount:${NS}:maker`]);
  }, 50_000);
});

describe('harness: generic pod features', () => {
  let c: Cluster;
  const labels = { app: 'misc' };
  const server = "require('http').createServer((q, s) => s.end('ok')).listen(8080)";

  beforeAll(async () => {
    c = await Cluster.create([
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'misc-env' }, data: { 'A': '1', 'B': 'two', 'bad key': 'x' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'misc-files' }, data: { 'app.conf': 'port=8080\n', 'other': 'o' } },
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'misc' },
        spec: {
          serviceName: 'misc',
          replicas: 1,
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: labels },
          template: {
            metadata: { labels, annotations: { note: 'hi' } },
            spec: {
              securityContext: { runAsUser: 1000, fsGroup: 1000 },
              initContainers: [{
                name: 'init',
                image: 'busybox',
                // Fails on its first run, succeeds on the second: retried with backoff.
                command: ['bash', '-c', 'n=$(cat /work/count 2>/dev/null || echo 0); echo $((n+1)) > /work/count; [ "$n" -ge 1 ]'],
                volumeMounts: [{ name: 'work', mountPath: '/work' }],
              }],
              containers: [{
                name: 'web',
                image: 'node:20',
                command: ['node', '-e', server],
                ports: [{ name: 'http', containerPort: 8080 }],
                envFrom: [{ configMapRef: { name: 'misc-env' }, prefix: 'CFG_' }],
                env: [
                  { name: 'CM_KEY', valueFrom: { configMapKeyRef: { name: 'misc-files', key: 'other' } } },
                  { name: 'LATE', valueFrom: { secretKeyRef: { name: 'later', key: 'v' } } },
                  { name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
                ],
                resources: { limits: { memory: '64Mi' } },
                startupProbe: { exec: { command: ['test', '-e', '/work/count'] }, periodSeconds: 1 },
                readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
                livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
                lifecycle: { postStart: { exec: { command: ['touch', '/work/poststart'] } } },
                volumeMounts: [
                  { name: 'work', mountPath: '/work' },
                  { name: 'work', mountPath: '/data/sub', subPath: 'sub' },
                  { name: 'files', mountPath: '/etc/app/app.conf', subPath: 'app.conf' },
                  { name: 'podinfo', mountPath: '/etc/podinfo' },
                  { name: 'proj', mountPath: '/etc/proj' },
                ],
              }],
              volumes: [
                { name: 'work', emptyDir: {} },
                { name: 'files', configMap: { name: 'misc-files' } },
                { name: 'podinfo', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
                {
                  name: 'proj',
                  projected: {
                    sources: [
                      { configMap: { name: 'misc-files', items: [{ key: 'other', path: 'nested/other.txt' }] } },
                      { downwardAPI: { items: [{ path: 'note', fieldRef: { fieldPath: "metadata.annotations['note']" } }] } },
                    ],
                  },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'rooty' },
        spec: {
          serviceName: 'rooty',
          selector: { matchLabels: { app: 'rooty' } },
          template: {
            metadata: { labels: { app: 'rooty' } },
            spec: {
              securityContext: { runAsNonRoot: true },
              containers: [{ name: 'c', image: 'busybox', command: ['sleep', '100'] }],
            },
          },
        },
      },
    ], { namespace: 'misc' });
  }, 30_000);

  afterAll(async () => {
    await c?.destroy();
  }, 30_000);

  test('waits for a missing Secret, init retried, probes of every kind, subPath/downward/projected volumes', async () => {
    const started = c.startStatefulSet('misc', { timeoutMs: 20_000 });
    await c.waitUntil('CreateContainerConfigError', 10_000, () => c.events().some((e) => /CreateContainerConfigError: secret "later" not found/.test(e)));
    expect(c.isReady('misc-0')).toBe(false);
    c.setSecret('later', { v: 'now' });
    await started;
    expect(c.restarts('misc-0', 'init')).toBe(1);
    const r = await c.exec('misc-0', 'web', ['bash', '-c', [
      'echo "$CFG_A $CFG_B ${CFG_bad_key-none} $CM_KEY $LATE $MEM $(id -u)"',
      'cat /etc/app/app.conf /etc/podinfo/labels; echo',
      'cat /etc/proj/nested/other.txt /etc/proj/note; echo',
      'test -e /work/poststart && echo poststart',
      'touch /data/sub/f && echo sub-ok',
    ].join('; ')]);
    expect(r.stderr).toBe('');
    // The StatefulSet controller's labels, the revision (template) the pod was created from included.
    const revision = c.pods().find((p) => p.name === 'misc-0')?.labels['controller-revision-hash'];
    expect(revision).toMatch(/^misc-[bcdfghjklmnpqrstvwxz2456789]{10}$/);
    expect(r.stdout).toBe([
      `1 two none o now 64 ${POSTGRES_UID}`,
      'port=8080',
      'app="misc"',
      'apps.kubernetes.io/pod-index="0"',
      `controller-revision-hash="${revision}"`,
      'statefulset.kubernetes.io/pod-name="misc-0"',
      'ohi',
      'poststart',
      'sub-ok',
      '',
    ].join('\n'));
    expect(fs.existsSync(path.join(c.volumePath('misc-0', 'work'), 'sub', 'f'))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(c.restarts('misc-0', 'web')).toBe(0);
    expect(c.isReady('misc-0')).toBe(true);
  }, 40_000);

  test('runAsNonRoot without a user is refused (CreateContainerConfigError)', async () => {
    await expect(c.startStatefulSet('rooty', { timeoutMs: 2000 })).rejects.toThrow(/runAsNonRoot and image will run as root/);
  }, 10_000);
});

describe('harness: ConfigMaps through the fake API (projected token, RBAC, apply)', () => {
  const ns = 'state';
  const tokenDir = '/var/run/secrets/api';
  let c: Cluster;
  let ca: string;

  // As the library's state sidecar: a projected token (and kube-root-ca.crt) mounted into the
  // sidecar only, RBAC for get/patch of one ConfigMap by resourceNames. `admin` may do anything.
  function stateObjects(state: Record<string, string>, opts: { other?: boolean; creds?: Record<string, string> } = {}): object[] {
    const rbac = (name: string, rules: object[]): object[] => [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name }, rules },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects: [{ kind: 'ServiceAccount', name }],
      },
    ];
    return [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-state' }, data: state },
      ...(opts.other === false ? [] : [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other' }, data: { v: '1' } }]),
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, stringData: opts.creds ?? { user: 'u' } },
      ...rbac('state-writer', [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['app-state'], verbs: ['get', 'patch'] }]),
      ...rbac('admin', [{ apiGroups: [''], resources: ['configmaps', 'secrets'], verbs: ['*'] }]),
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'admin' }, data: { 'admin.sh': ADMIN_SH } },
      {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'admin' },
        spec: {
          backoffLimit: 0,
          template: {
            spec: {
              serviceAccountName: 'admin',
              restartPolicy: 'Never',
              containers: [{
                name: 'admin',
                image: 'curlimages/curl',
                command: ['sh', '/scripts/admin.sh'],
                volumeMounts: [{ name: 'script', mountPath: '/scripts' }, { name: 'tmp', mountPath: '/tmp' }],
              }],
              volumes: [{ name: 'script', configMap: { name: 'admin' } }, { name: 'tmp', emptyDir: {} }],
            },
          },
        },
      },
      appStatefulSet('app'),
    ];
  }

  /** The pod: `main` sees the state ConfigMap (volume, env), `sidecar` alone has the API token. */
  function appStatefulSet(name: string, expirationSeconds = 3607): object {
    const labels = { app: name };
    return {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name },
      spec: {
        serviceName: name,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'state-writer',
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'main',
                image: 'busybox',
                // Exits (and is restarted, with a new environment) when /tmp/restart appears.
                command: ['sh', '-c', 'rm -f /tmp/restart; while [ ! -e /tmp/restart ]; do sleep 0.2; done'],
                env: [{ name: 'PRIMARY', valueFrom: { configMapKeyRef: { name: 'app-state', key: 'primary', optional: true } } }],
                envFrom: [{ configMapRef: { name: 'app-state' }, prefix: 'STATE_' }],
                volumeMounts: [{ name: 'state', mountPath: '/etc/state' }, { name: 'tmp', mountPath: '/tmp' }],
              },
              {
                name: 'sidecar',
                image: 'curlimages/curl',
                command: ['sleep', 'infinity'],
                volumeMounts: [{ name: 'api-token', mountPath: tokenDir, readOnly: true }],
              },
            ],
            volumes: [
              { name: 'state', configMap: { name: 'app-state' } },
              { name: 'tmp', emptyDir: {} },
              {
                name: 'api-token',
                projected: {
                  sources: [
                    { serviceAccountToken: { path: 'token', expirationSeconds } },
                    { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                    { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
                  ],
                },
              },
            ],
          },
        },
      },
    };
  }

  /** What the tests read of an API response (a ConfigMap or a Status). */
  interface ApiBody {
    readonly metadata?: { readonly resourceVersion?: string };
    readonly data?: Record<string, string>;
    readonly message?: string;
    readonly reason?: string;
  }

  /** A request from the sidecar with its projected token and CA (no -k): the code and the parsed body. */
  async function api(method: string, resource: string, body = '', contentType = 'application/merge-patch+json'):
  Promise<{ code: number; json: ApiBody }> {
    const curl = `curl -sS -w '\\n%{http_code}' --cacert ${tokenDir}/ca.crt -H "Authorization: Bearer $(cat ${tokenDir}/token)" `
      + '-X "$1" -H "Content-Type: $3" --data "$2" '
      + `"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat ${tokenDir}/namespace)/configmaps$4"`;
    const r = await c.exec('app-0', 'sidecar', ['sh', '-c', curl, 'sh', method, body, contentType, resource]);
    if (r.code !== 0) throw new Error(`curl failed (${r.code}): ${r.stderr}`);
    const nl = r.stdout.lastIndexOf('\n');
    return { code: Number(r.stdout.slice(nl + 1)), json: JSON.parse(r.stdout.slice(0, nl)) as ApiBody };
  }

  async function cat(container: string, file: string): Promise<string> {
    return (await c.exec('app-0', container, ['cat', file])).stdout;
  }

  beforeAll(async () => {
    c = await Cluster.create(stateObjects({ seed: 'a', dropped: 'x' }), { namespace: ns });
    ca = fs.readFileSync(c.apiServer!.caCertFile, 'utf8');
    await c.startStatefulSet('app', { timeoutMs: 20_000 });
  }, 40_000);

  afterAll(async () => {
    await c?.destroy();
  }, 30_000);

  test('the sidecar reads and merge-patches its ConfigMap with the projected token; RBAC resourceNames deny the rest', async () => {
    const denied = (verb: string, what: string): string =>
      `${what} is forbidden: User "system:serviceaccount:${ns}:state-writer" cannot ${verb} resource "configmaps" in API group "" in the namespace "${ns}"`;
    for (const [container, file] of [['main', `${tokenDir}/token`], ['main', '/var/run/secrets/kubernetes.io/serviceaccount/token'],
      ['sidecar', '/var/run/secrets/kubernetes.io/serviceaccount/token']]) {
      expect((await c.exec('app-0', container, ['test', '-e', file])).code).not.toBe(0);
    }
    const got = await api('GET', '/app-state');
    expect(got.code).toBe(200);
    expect(got.json.data).toEqual({ seed: 'a', dropped: 'x' });
    const patched = await api('PATCH', '/app-state', '{"data":{"primary":"app-0"}}');
    expect([patched.code, patched.json.data?.primary]).toEqual([200, 'app-0']);
    const version = got.json.metadata?.resourceVersion;
    expect(Number(patched.json.metadata?.resourceVersion)).toBeGreaterThan(Number(version));
    expect((await api('PATCH', '/app-state', '{"data":{"epoch":"1"}}', 'application/strategic-merge-patch+json')).code).toBe(200);
    const stale = await api('PATCH', '/app-state', JSON.stringify({ metadata: { resourceVersion: version }, data: { epoch: '2' } }));
    expect([stale.code, stale.json.reason]).toEqual([409, 'Conflict']);
    expect((await api('PATCH', '/app-state', '{"data":{"epoch":"2"}}', 'application/json')).code).toBe(415);
    expect(c.getConfigMap('app-state')).toEqual({ seed: 'a', dropped: 'x', primary: 'app-0', epoch: '1' });
    expect((await api('GET', '/other')).json.message).toBe(denied('get', 'configmaps "other"'));
    expect((await api('PATCH', '/other', '{"data":{"v":"2"}}')).code).toBe(403);
    expect((await api('GET', '')).json.message).toBe(denied('list', 'configmaps'));
    expect((await api('DELETE', '/app-state')).json.message).toBe(denied('delete', 'configmaps "app-state"'));
    expect(c.getConfigMap('other')).toEqual({ v: '1' });
    expect(new Set(c.apiRequests().map((r) => r.user))).toEqual(new Set([`system:serviceaccount:${ns}:state-writer`]));
  }, 30_000);

  test('API changes reach the ConfigMap volume within seconds, and configMapKeyRef/envFrom at the next start', async () => {
    // Two API changes a few ms apart: a sync of the volume may fall between them, so both are
    // awaited (each sync is atomic; the two need not arrive in one).
    await c.waitUntil('primary and epoch in the volume', 15_000, async () =>
      await cat('main', '/etc/state/primary') === 'app-0' && await cat('main', '/etc/state/epoch') === '1');
    await c.exec('app-0', 'main', ['touch', '/tmp/restart']);
    const env = await c.waitUntil('main restarted with the new env', 15_000, async () => {
      const r = await c.exec('app-0', 'main', ['sh', '-c', 'echo "$PRIMARY $STATE_primary $STATE_epoch $STATE_seed"']);
      return c.restarts('app-0', 'main') === 1 && r.code === 0 && r.stdout.trim();
    });
    expect(env).toBe('app-0 app-0 1 a');
  }, 30_000);

  test('the generic API on configmaps and secrets: create, 409, 400, replace, conflict, patch, list, delete', async () => {
    const job = await c.runJob('admin', { timeoutMs: 20_000 });
    expect(job.succeeded).toBe(true);
    const lines = job.logs.split('\n');
    const line = (prefix: string): string => lines.find((l) => l.startsWith(prefix)) ?? `no line ${prefix}:\n${job.logs}`;
    expect(line('POST configmaps 201')).toContain('"data":{"a":"1"},"binaryData":{"b":"aGk="}');
    expect(line('POST configmaps 409')).toContain('configmaps \\"made\\" already exists');
    expect(line('POST configmaps 400')).toContain('ConfigMap in version \\"v1\\" cannot be handled as a ConfigMap: data must be a map of strings');
    expect(job.logs).toMatch(/^POST configmaps 400 .*illegal base64 data in binaryData/m);
    expect(line('PUT configmaps/made 409')).toContain('"reason":"Conflict"');
    expect(line('PUT configmaps/made 200')).toContain('"data":{"a":"2"}}');
    expect(line('PATCH configmaps/made 200')).toContain('"data":{"a":"2","c":"3"}');
    expect(line('GET configmaps 200')).toMatch(/"kind":"ConfigMapList".*"name":"kube-root-ca.crt"/);
    expect(line('DELETE configmaps/made 200')).toContain('"status":"Success"');
    expect(line('GET configmaps/made 404')).toContain('configmaps \\"made\\" not found');
    expect(line('PATCH secrets/creds 200')).toContain('"data":{"user":"dQ==","added":"eWVz"}');
    expect(c.getConfigMap('made')).toBeUndefined();
    expect(c.getConfigMap('kept')).toEqual({ k: 'v' });
    expect(c.getSecret('creds')).toEqual({ user: 'u', added: 'yes' });
  }, 30_000);

  test('apply(): keys added through the API survive, keys dropped from the manifest go, unlisted objects are pruned', async () => {
    await c.apply(stateObjects({ seed: 'a', dropped: 'x' }));
    expect(c.getConfigMap('app-state')).toEqual({ seed: 'a', dropped: 'x', primary: 'app-0', epoch: '1' });
    expect(c.getSecret('creds')).toEqual({ user: 'u', added: 'yes' });
    await c.apply(stateObjects({ seed: 'b' }, { other: false, creds: { user: 'v' } }));
    expect(c.getConfigMap('app-state')).toEqual({ seed: 'b', primary: 'app-0', epoch: '1' });
    expect(c.getSecret('creds')).toEqual({ user: 'v', added: 'yes' });
    expect(c.getConfigMap('other')).toBeUndefined();
    expect(c.getConfigMap('kept')).toEqual({ k: 'v' });
    await c.waitUntil('volume updated by apply', 5000, async () =>
      (await c.exec('app-0', 'main', ['sh', '-c', 'ls /etc/state; cat /etc/state/seed'])).stdout === 'epoch\nprimary\nseed\nb');
  }, 30_000);

  test('kube-root-ca.crt holds the CA that verifies the server (curl without -k); put back when deleted; never applied', async () => {
    expect(c.getConfigMap('kube-root-ca.crt')).toEqual({ 'ca.crt': ca });
    expect(await cat('sidecar', `${tokenDir}/ca.crt`)).toBe(ca);
    const ok = await c.exec('app-0', 'sidecar', ['sh', '-c', `curl -sS --cacert ${tokenDir}/ca.crt https://$KUBERNETES_SERVICE_HOST/version; `
      + `curl -sS --cacert ${tokenDir}/ca.crt https://kubernetes.default.svc.cluster.local/healthz`]);
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    expect(ok.stdout).toMatch(/"gitVersion":"v1\.30\.0-fdb-e2e".*ok$/);
    const untrusted = await c.exec('app-0', 'sidecar', ['curl', '-sS', `https://${c.apiServer!.host}/version`]);
    expect(untrusted.code).toBe(60); // the system CAs do not know the server's
    expect(c.deleteConfigMap('kube-root-ca.crt')).toBe(true);
    await c.waitUntil('kube-root-ca.crt put back', 3000, () => c.getConfigMap('kube-root-ca.crt')?.['ca.crt'] === ca);
    const own = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-root-ca.crt' }, data: { 'ca.crt': 'mine' } };
    await expect(c.apply([...stateObjects({ seed: 'b' }), own])).rejects.toThrow(/kube-root-ca.crt is published by the harness/);
  }, 30_000);

  test('deleteConfigMap: the API answers 404, the volume keeps its files, apply() recreates it from the manifest only', async () => {
    expect(c.deleteConfigMap('app-state')).toBe(true);
    expect(c.deleteConfigMap('app-state')).toBe(false);
    const gone = await api('GET', '/app-state');
    expect([gone.code, gone.json.message]).toEqual([404, 'configmaps "app-state" not found']);
    expect(await cat('main', '/etc/state/seed')).toBe('b');
    await c.apply(stateObjects({ seed: 'c' }));
    expect(c.getConfigMap('app-state')).toEqual({ seed: 'c' });
    await c.waitUntil('volume recreated', 5000, async () =>
      (await c.exec('app-0', 'main', ['sh', '-c', 'ls /etc/state; cat /etc/state/seed'])).stdout === 'seed\nc');
  }, 30_000);

  test('a projected token with expirationSeconds under 10 minutes is refused, as the API server validates pods', async () => {
    await c.apply([...stateObjects({ seed: 'c' }), appStatefulSet('short', 599)]);
    const starting = c.startStatefulSet('short', { timeoutMs: 20_000 }).then(() => 'ready', (e: Error) => e.message);
    // The pod's start is refused (an event says why; the pod fails), and it never becomes ready.
    await c.waitUntil('the refusal', 60_000, () => c.events().some((e) => /short-0: pod failed: .*expirationSeconds 599: must be at least 600/.test(e)) || undefined);
    expect(await starting).toMatch(/timed out after 20000 ms waiting for StatefulSet short[^]*pod short-0: phase=Failed, ready=false/);
  }, 120_000);
});

describe('harness: StatefulSet updateStrategy (a template change through apply())', () => {
  const ns = 'roll';
  const REVISION = 'controller-revision-hash';
  const ORDINALS = [0, 1, 2];
  let c: Cluster | undefined;

  afterEach(async () => {
    await c?.destroy();
    c = undefined;
  }, 30_000);

  /**
   * StatefulSet `roll`: 3 pods of `sleep`, Ready while /tmp/ready exists (an emptyDir: per pod
   * instance). `version` is a template annotation; with `readyAtStart: false` a pod of this
   * template is Ready only once the test creates the file. SIGTERM ends it at once (a trap), after
   * its preStop hook.
   */
  function rollObjects(version: string, opts: { policy?: string; updateStrategy?: object; readyAtStart?: boolean } = {}): object[] {
    const labels = { app: 'roll' };
    return [{
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'roll', namespace: ns },
      spec: {
        serviceName: 'roll',
        replicas: 3,
        podManagementPolicy: opts.policy ?? 'Parallel',
        updateStrategy: opts.updateStrategy,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels, annotations: { version } },
          spec: {
            terminationGracePeriodSeconds: 5,
            containers: [{
              name: 'main',
              image: 'busybox',
              command: ['sh', '-c', 'trap "exit 0" TERM; if [ "$READY_AT_START" = yes ]; then touch /tmp/ready; fi; sleep 100000 & wait'],
              env: [{ name: 'READY_AT_START', value: opts.readyAtStart === false ? 'no' : 'yes' }],
              readinessProbe: { exec: { command: ['test', '-e', '/tmp/ready'] }, periodSeconds: 1, timeoutSeconds: 5, failureThreshold: 3 },
              lifecycle: { preStop: { exec: { command: ['true'] } } },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            }],
            volumes: [{ name: 'tmp', emptyDir: {} }],
          },
        },
      },
    }];
  }

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const pod = (name: string) => c!.pods().find((p) => p.name === name);
  /** Each pod's revision label and IP (a replaced pod has a new IP), by ordinal; '-' if missing. */
  const state = () => ORDINALS.map((i) => {
    const p = pod(`roll-${i}`);
    return p ? `${p.labels[REVISION]} ${p.ip}${p.terminating ? ' terminating' : ''}` : '-';
  });

  async function start(objects: object[]): Promise<{ v1: string; before: string[] }> {
    c = await Cluster.create(objects, { namespace: ns, fakeApi: false });
    await c.startStatefulSet('roll', { timeoutMs: 30_000 });
    const v1 = pod('roll-0')!.labels[REVISION];
    expect(v1).toMatch(/^roll-[bcdfghjklmnpqrstvwxz2456789]{10}$/);
    const before = state();
    expect(before.every((s) => s.startsWith(`${v1} `))).toBe(true);
    return { v1, before };
  }

  test.each(['Parallel', 'OrderedReady'])('RollingUpdate (%s): highest ordinal first, one pod at a time, each replacement Ready before the next; apply() waits for the roll', async (policy) => {
    const { v1, before } = await start(rollObjects('v1', { policy }));
    let mostNotReady = 0;
    const sampler = setInterval(() => {
      mostNotReady = Math.max(mostNotReady, ORDINALS.filter((i) => !pod(`roll-${i}`)?.ready).length);
    }, 50);
    let applied = false;
    const applying = c!.apply(rollObjects('v2', { policy, readyAtStart: false }), { timeoutMs: 90_000 }).then(() => {
      applied = true;
    });
    try {
      let v2 = '';
      for (const i of [2, 1, 0]) {
        const name = `roll-${i}`;
        const fresh = await c!.waitUntil(`${name} recreated from the new template`, 30_000, () => {
          const rev = pod(name)?.labels[REVISION];
          return rev !== undefined && rev !== v1 && rev;
        });
        v2 ||= fresh;
        expect(fresh).toBe(v2);
        // The replacement is not Ready: nothing else moves meanwhile.
        await sleep(2500);
        const now = state();
        expect({ i, ready: c!.isReady(name), applied }).toEqual({ i, ready: false, applied: false });
        for (const lower of ORDINALS.filter((o) => o < i)) expect({ lower, state: now[lower] }).toEqual({ lower, state: before[lower] });
        for (const higher of ORDINALS.filter((o) => o > i)) expect({ higher, rev: now[higher].split(' ')[0], ready: c!.isReady(`roll-${higher}`) }).toEqual({ higher, rev: v2, ready: true });
        await c!.waitUntil(`${name}'s /tmp/ready`, 30_000, async () => (await c!.exec(name, 'main', ['touch', '/tmp/ready'])).code === 0);
      }
      await applying;
    } finally {
      clearInterval(sampler);
    }
    const after = state();
    for (const i of ORDINALS) {
      expect(after[i].split(' ')[0]).not.toBe(v1);
      expect(after[i]).not.toBe(before[i]);
      expect(c!.isReady(`roll-${i}`)).toBe(true);
    }
    expect(mostNotReady).toBe(1);
    // Each old pod went through the normal graceful deletion (its preStop hook ran).
    for (const i of ORDINALS) expect(c!.events().some((e) => e.includes(`roll-${i}/main: running preStop`))).toBe(true);
  }, 150_000);

  test('partition: 1 leaves pod 0 on the old template (also when it is deleted); partition 0 then rolls it', async () => {
    const partition = (n: number) => ({ type: 'RollingUpdate', rollingUpdate: { partition: n } });
    const { v1, before } = await start(rollObjects('v1', { policy: 'OrderedReady', updateStrategy: partition(1) }));
    await c!.apply(rollObjects('v2', { policy: 'OrderedReady', updateStrategy: partition(1) }), { timeoutMs: 60_000 });
    const v2 = pod('roll-2')!.labels[REVISION];
    expect(v2).not.toBe(v1);
    let now = state();
    expect([now[1].split(' ')[0], now[2].split(' ')[0]]).toEqual([v2, v2]);
    expect(now[0]).toBe(before[0]);
    await sleep(3000);
    expect(state()[0]).toBe(before[0]);
    // Below the partition, a deleted pod comes back from the current revision (the old template).
    await c!.deletePod('roll-0');
    await c!.waitReady('roll-0', 30_000);
    now = state();
    expect(now[0].split(' ')[0]).toBe(v1);
    expect(now[0]).not.toBe(before[0]);
    await c!.apply(rollObjects('v2', { policy: 'OrderedReady', updateStrategy: partition(0) }), { timeoutMs: 60_000 });
    expect(state().map((s) => s.split(' ')[0])).toEqual([v2, v2, v2]);
  }, 150_000);

  test('OnDelete: a template change replaces nothing; a deleted pod comes back on the new template', async () => {
    const onDelete = { type: 'OnDelete' };
    const { v1, before } = await start(rollObjects('v1', { updateStrategy: onDelete }));
    const t0 = Date.now();
    await c!.apply(rollObjects('v2', { updateStrategy: onDelete }), { timeoutMs: 60_000 });
    expect(Date.now() - t0).toBeLessThan(5000);
    await sleep(4000);
    expect(state()).toEqual(before);
    await c!.deletePod('roll-1');
    await c!.waitReady('roll-1', 30_000);
    const now = state();
    expect(now[1].split(' ')[0]).not.toBe(v1);
    expect([now[0], now[2]]).toEqual([before[0], before[2]]);
  }, 120_000);

  test('a pod held down (recreate: false) is not recreated by the roll, which waits for it', async () => {
    const { v1, before } = await start(rollObjects('v1'));
    await c!.deletePod('roll-1', { recreate: false });
    await c!.apply(rollObjects('v2'), { wait: false });
    const v2 = await c!.waitUntil('roll-2 replaced and Ready', 30_000, () => {
      const p = pod('roll-2');
      return p?.ready && p.labels[REVISION] !== v1 && p.labels[REVISION];
    });
    await sleep(4000);
    const now = state();
    expect(now[1]).toBe('-');
    expect(now[0]).toBe(before[0]);
    await c!.startPod('roll-1');
    await c!.waitUntil('every pod of the new template and Ready', 30_000, () =>
      ORDINALS.every((i) => pod(`roll-${i}`)?.labels[REVISION] === v2 && c!.isReady(`roll-${i}`)));
    expect(state()[0]).not.toBe(before[0]);
  }, 120_000);
});

// The admin Job of the ConfigMap tests: every verb through the generic API, one line per request.
const ADMIN_SH = `#!/bin/sh
set -u
SA=/var/run/secrets/kubernetes.io/serviceaccount
# req METHOD PATH [BODY [CONTENT_TYPE]]: prints "METHOD PATH CODE BODY" on one line.
req() {
  code=$(curl -sS -o /tmp/out -w '%{http_code}' --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" \\
    -X "$1" -H "Content-Type: \${4:-application/json}" --data "\${3:-}" \\
    "https://kubernetes.default.svc/api/v1/namespaces/$(cat $SA/namespace)/$2")
  printf '%s %s %s %s\\n' "$1" "$2" "$code" "$(cat /tmp/out)"
}
req POST configmaps '{"metadata":{"name":"made"},"data":{"a":"1"},"binaryData":{"b":"aGk="}}'
req POST configmaps '{"metadata":{"name":"made"}}'
req POST configmaps '{"metadata":{"name":"kept"},"data":{"k":"v"}}'
req POST configmaps '{"metadata":{"name":"bad"},"data":{"n":1}}'
req POST configmaps '{"metadata":{"name":"bad"},"binaryData":{"b":"%%"}}'
req PUT configmaps/made '{"metadata":{"name":"made","resourceVersion":"1"},"data":{"a":"2"}}'
req PUT configmaps/made '{"metadata":{"name":"made"},"data":{"a":"2"}}'
req PATCH configmaps/made '{"data":{"c":"3"}}' application/merge-patch+json
req GET configmaps
req DELETE configmaps/made
req GET configmaps/made
req PATCH secrets/creds '{"stringData":{"added":"yes"}}' application/strategic-merge-patch+json
`;
