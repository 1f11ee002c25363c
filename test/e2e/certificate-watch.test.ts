/**
 * The certificate-watch sidecar of the FerretDB pods (ferretdbTls, postgresTls, the password), run for real: the script,
 * env and mounts exactly as synthesized, Debian's sh and curl, certificates made with openssl,
 * Secret volume updates done as the kubelet does them (an atomic swap of the `..data` symlink),
 * and the harness's fake API server (HTTPS, ServiceAccount tokens) enforcing the synthesized Role.
 * The FerretDB Deployments are stored objects: no Deployment controller runs here, so a rollout
 * is the template annotation this sidecar sets.
 */
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { FerretDBCluster, FerretDBTls, PostgresTls } from '../../src';
import { FakeApi, ObjectStore } from './harness/fakeapi';
import { Network, NETNS_PREFIX } from './harness/netns';
import { hostEnv, sleep, waitFor } from './harness/util';
import { registerHarness, releaseHarness } from './harness/volumes';

jest.setTimeout(120_000);

const NAMESPACE = 'fdb';
const ANNOTATION = 'ferretdb.cdk8s.io/certificates';
const FERRETDB_UID = 1000;

const chart = Testing.chart();
new FerretDBCluster(chart, 'db', {
  name: 'fdb', ferretdbTls: FerretDBTls.fromSecret('fdb-ferretdb-tls'), postgresTls: PostgresTls.fromSecret('fdb-pg-tls'),
});
const objects: any[] = Testing.synth(chart);
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const deploymentNames = ofKind('Deployment').map((d) => d.metadata.name);
const role = ofKind('Role').find((r) => r.rules.some((rule: any) => rule.resources.includes('deployments')));
const script = ofKind('ConfigMap').find((c) => c.data?.['certificate-watch.sh'])?.data['certificate-watch.sh'];

/** FerretDB's PostgreSQL password (PGPASSWORD) as the pods start with it, and as rotated. */
const PASSWORD = 'first-password';
const ROTATED_PASSWORD = 'rotated-password';

/** sha256 of the PostgreSQL CA, the listener's tls.crt and tls.key, then the password: first 32 hex digits (WATCH_FILES' order). */
function fingerprint(ca: string, cert: { crt: string; key: string }, password = PASSWORD): string {
  return crypto.createHash('sha256').update(ca + cert.crt + cert.key + password).digest('hex').slice(0, 32);
}

/** A self-signed server certificate made with openssl (the sidecar only fingerprints it). */
function makeCertificate(dir: string, n: number): { crt: string; key: string } {
  const key = path.join(dir, `key${n}`);
  const crt = path.join(dir, `crt${n}`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=fdb-rw', '-addext', 'subjectAltName=DNS:fdb-rw,DNS:fdb-ro', '-keyout', key, '-out', crt], { stdio: 'ignore' });
  return { crt: fs.readFileSync(crt, 'utf8'), key: fs.readFileSync(key, 'utf8') };
}

/** A Secret volume as the kubelet writes it: files are links into `..data`, swapped at once. */
function writeSecretVolume(dir: string, files: { [name: string]: string }): void {
  const version = path.join(dir, `..${Date.now()}.${crypto.randomBytes(3).toString('hex')}`);
  fs.mkdirSync(version, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    fs.writeFileSync(path.join(version, name), text, { mode: 0o440 });
    fs.chownSync(path.join(version, name), 0, FERRETDB_UID);
  }
  fs.chmodSync(version, 0o755);
  fs.symlinkSync(path.basename(version), path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    if (!fs.existsSync(path.join(dir, name))) fs.symlinkSync(path.join('..data', name), path.join(dir, name));
  }
}

/** One FerretDB pod's certificate-watch container: its volumes are directories, its API the fake one. */
class WatchPod {
  public readonly dirs: { [volume: string]: string } = {};
  private readonly container: any;
  private proc?: ChildProcess;
  private readonly logFile: string;

  constructor(root: string, public readonly name: string, deployment: string) {
    const spec = ofKind('Deployment').find((d) => d.metadata.name === deployment).spec.template.spec;
    const container = spec.containers.find((c: any) => c.name === 'certificate-watch');
    this.container = container;
    for (const m of container.volumeMounts) {
      const dir = path.join(root, name, m.name);
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      // emptyDirs are writable by the pod's fsGroup.
      if (!m.readOnly) fs.chownSync(dir, FERRETDB_UID, FERRETDB_UID);
      this.dirs[m.name] = dir;
    }
    this.logFile = path.join(root, name, 'log');
  }

  /** A path inside the container, as a host path. */
  public hostPath(p: string): string {
    for (const m of this.container.volumeMounts) {
      if (p === m.mountPath || p.startsWith(`${m.mountPath}/`)) return this.dirs[m.name] + p.slice(m.mountPath.length);
    }
    throw new Error(`${p} is on no volume of ${this.name}`);
  }

  /** Starts the container's command with its env (plus a short interval), as uid 1000, in the switch namespace. */
  public start(net: Network, api: FakeApi, extraEnv: { [name: string]: string } = {}): void {
    const env: { [name: string]: string } = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      KUBERNETES_SERVICE_HOST: api.host,
      KUBERNETES_SERVICE_PORT: String(api.port),
      WATCH_INTERVAL: '0.3',
    };
    for (const e of this.container.env) {
      env[e.name] = e.valueFrom?.fieldRef?.fieldPath === 'metadata.name' ? this.name : this.mapped(e.value);
    }
    Object.assign(env, extraEnv);
    const argv = this.container.command.map((a: string) => this.mapped(a));
    const out = fs.openSync(this.logFile, 'a');
    this.proc = spawn('ip', ['netns', 'exec', net.switchNs, 'setpriv', `--reuid=${FERRETDB_UID}`, `--regid=${FERRETDB_UID}`, '--clear-groups',
      'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], { detached: true, stdio: ['ignore', out, out], env: hostEnv() });
    fs.closeSync(out);
  }

  public async stop(): Promise<void> {
    const p = this.proc;
    if (!p?.pid || p.exitCode !== null) return;
    const exited = new Promise((resolve) => p.once('exit', resolve));
    process.kill(-p.pid, 'SIGTERM');
    await exited;
  }

  public log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Paths in a value (a path, or paths separated by spaces) as host paths. */
  private mapped(value: string): string {
    return value.split(' ').map((word) => word.startsWith('/etc/') || word.startsWith('/var/') ? this.hostPath(word) : word).join(' ');
  }
}

/** A harness id: registered, so that other harnesses' clean-up leaves this network namespace alone. */
const HARNESS_ID = crypto.randomBytes(3).toString('hex');
let root: string;
let net: Network;
let api: FakeApi;
let store: ObjectStore;
const pods: WatchPod[] = [];
let first: { crt: string; key: string };
let second: { crt: string; key: string };
let oldCa: string;
let newCa: string;

/** A pod of `deployment` with the given certificate and PostgreSQL CA mounted, its token, CA and namespace files. */
function newPod(name: string, deployment: string, cert: { crt: string; key: string }, ca = oldCa): WatchPod {
  const pod = new WatchPod(root, name, deployment);
  writeSecretVolume(pod.dirs['listener-tls'], { 'tls.crt': cert.crt, 'tls.key': cert.key });
  writeSecretVolume(pod.dirs['postgres-ca'], { 'ca.crt': ca });
  writeSecretVolume(pod.dirs['postgres-password'], { password: PASSWORD });
  writeSecretVolume(pod.dirs['api-token'], {
    'token': api.token(NAMESPACE, role.metadata.name), 'ca.crt': api.caCrt, 'namespace': NAMESPACE,
  });
  writeSecretVolume(pod.dirs['certificate-watch'], { 'certificate-watch.sh': script });
  pods.push(pod);
  return pod;
}

const patches = () => api.requests().filter((r) => r.method === 'PATCH');
const template = (name: string) => store.get('deployments', NAMESPACE, name)?.spec.template;

beforeAll(async () => {
  expect(script).toBeDefined();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-cert-watch-'));
  fs.chmodSync(root, 0o755);
  registerHarness(HARNESS_ID);
  net = await Network.create(`${NETNS_PREFIX}-${HARNESS_ID}`);
  store = new ObjectStore(path.join(root, 'store'));
  api = await FakeApi.start(path.join(root, 'api'), net.switchNs, net.gateway, store.dir);
  const binding = ofKind('RoleBinding').find((b) => b.roleRef.name === role.metadata.name);
  api.setRbac({
    roles: [{ namespace: NAMESPACE, name: role.metadata.name, rules: role.rules }],
    clusterRoles: [],
    roleBindings: [{ namespace: NAMESPACE, roleRef: binding.roleRef, subjects: binding.subjects }],
    clusterRoleBindings: [],
  });
  for (const d of ofKind('Deployment')) store.put('deployments', NAMESPACE, d);
  store.put('deployments', NAMESPACE, { ...ofKind('Deployment')[0], metadata: { name: 'unrelated' } });
  const certs = path.join(root, 'certs');
  fs.mkdirSync(certs);
  first = makeCertificate(certs, 1);
  second = makeCertificate(certs, 2);
  oldCa = makeCertificate(certs, 3).crt;
  newCa = makeCertificate(certs, 4).crt;
});

afterAll(async () => {
  for (const p of pods) await p.stop();
  api?.stop();
  await net?.destroy();
  releaseHarness(HARNESS_ID);
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

test('the synthesized cluster has the sidecar in both FerretDB Deployments, watching the CA, the listener\'s files and the password, and a Role for exactly those', () => {
  expect(deploymentNames.sort()).toEqual(['fdb-ferretdb-ro', 'fdb-ferretdb-rw']);
  for (const d of ofKind('Deployment')) {
    const sidecar = d.spec.template.spec.containers.find((c: any) => c.name === 'certificate-watch');
    expect(sidecar.env.find((e: any) => e.name === 'WATCH_FILES').value).toBe('/etc/ferretdb/postgres-ca/ca.crt /etc/ferretdb/tls/tls.crt /etc/ferretdb/tls/tls.key /etc/ferretdb/postgres-password/password');
  }
  expect(role.rules).toEqual([{ apiGroups: ['apps'], resources: ['deployments'], resourceNames: ['fdb-ferretdb-rw', 'fdb-ferretdb-ro'], verbs: ['patch'] }]);
});

test('an unchanged certificate asks for nothing: no API request in 3 s from three pods', async () => {
  const rw0 = newPod('fdb-ferretdb-rw-a', 'fdb-ferretdb-rw', first);
  const rw1 = newPod('fdb-ferretdb-rw-b', 'fdb-ferretdb-rw', first);
  const ro0 = newPod('fdb-ferretdb-ro-a', 'fdb-ferretdb-ro', first);
  for (const p of [rw0, rw1, ro0]) p.start(net, api);
  await waitFor('every sidecar recorded its start fingerprint', 15_000, () =>
    [rw0, rw1, ro0].every((p) => fs.existsSync(path.join(p.dirs['certificate-watch-state'], 'started'))));
  await sleep(3000);
  expect(api.requests()).toEqual([]);
  for (const p of [rw0, rw1, ro0]) {
    expect(fs.readFileSync(path.join(p.dirs['certificate-watch-state'], 'started'), 'utf8').trim()).toBe(fingerprint(oldCa, first));
  }
  expect(template('fdb-ferretdb-rw').metadata.annotations).toBeUndefined();
});

test('a renewed certificate (the kubelet\'s atomic swap) sets each Deployment\'s template annotation to the new fingerprint, once per pod, and nothing else', async () => {
  const before = { rw: template('fdb-ferretdb-rw'), ro: template('fdb-ferretdb-ro'), unrelated: template('unrelated') };
  for (const p of pods) writeSecretVolume(p.dirs['listener-tls'], { 'tls.crt': second.crt, 'tls.key': second.key });
  const expected = fingerprint(oldCa, second);
  await waitFor('both Deployments annotated', 15_000, () =>
    template('fdb-ferretdb-rw').metadata.annotations?.[ANNOTATION] === expected && template('fdb-ferretdb-ro').metadata.annotations?.[ANNOTATION] === expected);
  await sleep(2000);
  // Each pod asked once, and succeeded once; both rw pods asked for the same value (one rollout in
  // Kubernetes). A request the API server served after curl gave up (--max-time, a loaded machine)
  // is asked again, for the same value: the pod's log then says it could not reach the API.
  const asked = (p: WatchPod) => p.log().split('\n').filter((l) => l.includes('to replace its pods')).length;
  const unreached = pods.reduce((n, p) => n + p.log().split('\n').filter((l) => l.includes('cannot reach the Kubernetes API')).length, 0);
  expect(pods.map((p) => ({ pod: p.name, asked: asked(p) }))).toEqual(pods.map((p) => ({ pod: p.name, asked: 1 })));
  const served = patches().map((r) => `${r.path} ${r.code}`);
  if (served.length !== 3) console.log(`patches: ${served.join(', ')}\n${pods.map((p) => p.log()).join('')}`);
  expect([...new Set(served)].sort()).toEqual([
    `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/fdb-ferretdb-ro 200`,
    `/apis/apps/v1/namespaces/${NAMESPACE}/deployments/fdb-ferretdb-rw 200`,
  ]);
  expect(served.filter((r) => r.includes('fdb-ferretdb-ro')).length).toBeGreaterThanOrEqual(1);
  expect(served.filter((r) => r.includes('fdb-ferretdb-rw')).length).toBeGreaterThanOrEqual(2);
  expect(served.length).toBeLessThanOrEqual(3 + unreached);
  expect(patches().every((r) => r.user === `system:serviceaccount:${NAMESPACE}:${role.metadata.name}`)).toBe(true);
  // Only the annotation changed.
  for (const [name, t] of [['fdb-ferretdb-rw', before.rw], ['fdb-ferretdb-ro', before.ro]] as const) {
    expect(template(name)).toEqual({ ...t, metadata: { ...t.metadata, annotations: { [ANNOTATION]: expected } } });
  }
  expect(template('unrelated')).toEqual(before.unrelated);
  expect(pods[0].log()).toContain(`the files FerretDB read at start (password, certificates) changed (${fingerprint(oldCa, first)} -> ${expected}): `
    + 'asked Deployment fdb-ferretdb-rw to replace its pods');
});

test('a restarted sidecar remembers what FerretDB started with and what it asked for: no second request', async () => {
  const pod = pods[0];
  await pod.stop();
  const count = patches().length;
  pod.start(net, api);
  await sleep(3000);
  expect(patches().length).toBe(count);
  expect(fs.readFileSync(path.join(pod.dirs['certificate-watch-state'], 'started'), 'utf8').trim()).toBe(fingerprint(oldCa, first));
});

test('a pod started after the rollout, with the renewed certificate, asks for nothing', async () => {
  const count = patches().length;
  const fresh = newPod('fdb-ferretdb-rw-c', 'fdb-ferretdb-rw', second);
  fresh.start(net, api);
  await waitFor('the new sidecar recorded its start fingerprint', 15_000, () =>
    fs.existsSync(path.join(fresh.dirs['certificate-watch-state'], 'started')));
  await sleep(2000);
  expect(patches().length).toBe(count);
});

test('a renewed PostgreSQL CA (FerretDB\'s driver read the old one at start) asks for a rollout too', async () => {
  const count = patches().length;
  const pod = pods[2];
  expect(pod.name).toBe('fdb-ferretdb-ro-a');
  writeSecretVolume(pod.dirs['postgres-ca'], { 'ca.crt': newCa });
  const expected = fingerprint(newCa, second);
  // The fake API server stores the object before it logs the request: wait for both.
  await waitFor('the reader Deployment annotated with the new CA, and the request logged', 15_000,
    () => template('fdb-ferretdb-ro').metadata.annotations?.[ANNOTATION] === expected && patches().length > count);
  expect(patches().slice(count).map((r) => `${r.path} ${r.code}`)).toEqual([`/apis/apps/v1/namespaces/${NAMESPACE}/deployments/fdb-ferretdb-ro 200`]);
});

test('a rotated password (FerretDB read PGPASSWORD at start) asks for a rollout too', async () => {
  const count = patches().length;
  const pod = pods[2];
  expect(pod.name).toBe('fdb-ferretdb-ro-a');
  writeSecretVolume(pod.dirs['postgres-password'], { password: ROTATED_PASSWORD });
  const expected = fingerprint(newCa, second, ROTATED_PASSWORD);
  await waitFor('the reader Deployment annotated with the new password\'s fingerprint, and the request logged', 15_000,
    () => template('fdb-ferretdb-ro').metadata.annotations?.[ANNOTATION] === expected && patches().length > count);
  expect(patches().slice(count).map((r) => `${r.path} ${r.code}`)).toEqual([`/apis/apps/v1/namespaces/${NAMESPACE}/deployments/fdb-ferretdb-ro 200`]);
});

test('the Role grants nothing else: patching another Deployment, or reading its own, is refused (403) and logged', async () => {
  const stray = newPod('stray', 'fdb-ferretdb-rw', first);
  stray.start(net, api, { DEPLOYMENT: 'unrelated' });
  await waitFor('the stray sidecar recorded its start fingerprint', 15_000, () =>
    fs.existsSync(path.join(stray.dirs['certificate-watch-state'], 'started')));
  writeSecretVolume(stray.dirs['listener-tls'], { 'tls.crt': second.crt, 'tls.key': second.key });
  await waitFor('a refused patch', 15_000, () => patches().some((r) => r.path.endsWith('/deployments/unrelated')));
  expect(patches().filter((r) => r.path.endsWith('/deployments/unrelated')).map((r) => r.code)).toContain(403);
  await waitFor('the refusal logged', 5000, () => stray.log().includes('patching Deployment unrelated failed with HTTP 403'));
  expect(template('unrelated').metadata.annotations).toBeUndefined();
  // Only patch: a GET of its own Deployment is refused too.
  const token = api.token(NAMESPACE, role.metadata.name);
  const get = execFileSync('ip', ['netns', 'exec', net.switchNs, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', api.caCrtFile,
    '-H', `Authorization: Bearer ${token}`, `https://${api.host}/apis/apps/v1/namespaces/${NAMESPACE}/deployments/fdb-ferretdb-rw`], { env: hostEnv() }).toString();
  expect(get).toBe('403');
});
