/**
 * The cluster's Lease: lease.sh (the `lease` sidecar of every PostgreSQL pod, POSIX sh with a stub
 * curl and a stub clock), fencing.sh (the primary's side), and what is synthesized for it.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Duration } from 'cdk8s';
import { byKind, find, postgresConfigMap, synth } from './util';

const objs = synth();
const pgConfig = postgresConfigMap(objs);
const primarySts = find(objs, 'StatefulSet', 'x-pg-primary');
const leaseSidecar = primarySts.spec.template.spec.containers.find((c: any) => c.name === 'lease');
const LEASE = 'x-pg-primary-leader';
const POD = 'x-pg-primary-0';
const OTHER = 'x-pg-replica-0';

interface Request {
  readonly method: string;
  readonly url: string;
  readonly headers: string[];
  readonly data?: string;
}

interface LeaseRun {
  readonly stderr: string;
  readonly requests: Request[];
  /** Files of STATE_DIR after the run. */
  readonly files: { [name: string]: string };
}

/** A Lease as the API server answers it. */
function lease(rv: string, spec: { [k: string]: unknown } = {}): string {
  return JSON.stringify({
    kind: 'Lease',
    apiVersion: 'coordination.k8s.io/v1',
    metadata: { name: LEASE, namespace: 'orders', resourceVersion: rv },
    spec: { leaseDurationSeconds: 15, ...spec },
  }, null, 4);
}

/**
 * Runs lease.sh without its loop, then `steps`: bash-free POSIX sh lines calling step(), setting
 * the stub clock (`clock 100.00`: /proc/uptime) and the stub API's next answers (`answer <file>`).
 * `gets`: the GET bodies by name; `patchCode`: what PATCH answers.
 */
function runLease(o: {
  leader: string;
  gets: { [name: string]: string };
  steps: string;
  patchCode?: number;
  files?: { [name: string]: string };
}): LeaseRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-lease-'));
  try {
    const [token, bin, state, config] = ['token', 'bin', 'state', 'config'].map((d) => path.join(dir, d));
    for (const d of [token, bin, state, config]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(token, 'token'), 'stub-token');
    fs.writeFileSync(path.join(token, 'namespace'), 'orders');
    fs.writeFileSync(path.join(token, 'ca.crt'), 'stub-ca');
    fs.writeFileSync(path.join(config, 'leader'), `${o.leader}\n`);
    for (const [name, body] of Object.entries(o.gets)) fs.writeFileSync(path.join(dir, `${name}.json`), body);
    for (const [name, content] of Object.entries(o.files ?? {})) fs.writeFileSync(path.join(state, name), content);
    fs.writeFileSync(path.join(dir, 'uptime'), '100.00 50.00\n');
    fs.writeFileSync(path.join(bin, 'curl'), [
      '#!/bin/sh',
      'method=GET; data=""; url=""; headers=""',
      'while [ $# -gt 0 ]; do',
      '  case "$1" in',
      '    -X) method=$2; shift ;;',
      '    -H) headers="$headers$2|"; shift ;;',
      '    --data) data=$2; shift ;;',
      '    -w|--max-time|--cacert) shift ;;',
      '    -*) ;;',
      '    *) url=$1 ;;',
      '  esac',
      '  shift',
      'done',
      `printf '%s\\037%s\\037%s\\037%s\\n' "$method" "$url" "$headers" "$data" >> "${dir}/requests"`,
      'if [ "$method" = GET ]; then',
      `  [ -f "${dir}/down" ] && { echo "curl: (28) Connection timed out" >&2; exit 28; }`,
      `  cat "${dir}/$(cat "${dir}/answer").json"; printf '\\n200'`,
      'else',
      `  printf '{}\\n%s' "$(cat "${dir}/patch-code")"`,
      'fi',
      '',
    ].join('\n'), { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'patch-code'), String(o.patchCode ?? 200));
    fs.writeFileSync(path.join(dir, 'answer'), Object.keys(o.gets)[0]);
    const script = path.join(dir, 'lease.sh');
    fs.writeFileSync(script, pgConfig.data['lease.sh']);
    const env: { [k: string]: string } = {
      PATH: `${bin}:${process.env.PATH}`, KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', POD_NAME: POD,
    };
    for (const e of leaseSidecar.env) if (e.value !== undefined) env[e.name] = e.value;
    Object.assign(env, { STATE_DIR: state, TOKEN_DIR: token, CONFIG_DIR: config, UPTIME_FILE: path.join(dir, 'uptime') });
    const prelude = [
      `clock() { echo "$1 50.00" > "${dir}/uptime"; }`,
      `answer() { echo "$1" > "${dir}/answer"; }`,
      `down() { touch "${dir}/down"; }`,
      `patch_code() { echo "$1" > "${dir}/patch-code"; }`,
    ].join('\n');
    const r = spawnSync('sh', ['-c', `eval "$(sed '/^trap /,$d' "$0")"\n${prelude}\n${o.steps}`, script], {
      env, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const requests = fs.existsSync(path.join(dir, 'requests'))
      ? fs.readFileSync(path.join(dir, 'requests'), 'utf8').split('\n').filter(Boolean).map((l) => {
        const [method, url, headers, data] = l.split('\x1f');
        return { method, url, headers: headers.split('|').filter(Boolean), data: data || undefined };
      })
      : [];
    const files = Object.fromEntries(fs.readdirSync(state).map((f) => [f, fs.readFileSync(path.join(state, f), 'utf8')]));
    return { stderr: r.stderr + (r.error ? String(r.error) : ''), requests, files };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const patches = (r: LeaseRun) => r.requests.filter((q) => q.method === 'PATCH').map((q) => JSON.parse(q.data!));

describe('lease.sh: the pod the leader key names', () => {
  test('reads and writes the one Lease at the in-cluster API address of its namespace, with the projected token', () => {
    const r = runLease({ leader: POD, gets: { free: lease('7') }, steps: 'step' });
    expect(r.requests.map((q) => q.method)).toEqual(['GET', 'PATCH']);
    for (const q of r.requests) {
      expect(q.url).toBe(`https://10.0.0.1:443/apis/coordination.k8s.io/v1/namespaces/orders/leases/${LEASE}`);
      expect(q.headers).toContain('Authorization: Bearer stub-token');
    }
    expect(r.requests[1].headers).toContain('Content-Type: application/merge-patch+json');
  });

  test('takes a free Lease at once with a compare-and-swap on the resourceVersion it read, and records when it sent the request', () => {
    const r = runLease({ leader: POD, gets: { free: lease('7') }, steps: 'clock 123.45; step' });
    const [p] = patches(r);
    expect(p.metadata).toEqual({ resourceVersion: '7' });
    expect(p.spec).toMatchObject({ holderIdentity: POD, leaseDurationSeconds: 15, leaseTransitions: 1 });
    expect(p.spec.acquireTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(r.files['lease-renewed']).toBe('123450\n');
    expect(r.files['lease-expired-holder']).toBeUndefined();
  });

  test('renews a Lease it holds (renewTime only) and records each renewal', () => {
    const r = runLease({ leader: POD, gets: { mine: lease('8', { holderIdentity: POD, leaseTransitions: 3 }) }, steps: 'step; clock 102.00; step' });
    const ps = patches(r);
    expect(ps).toHaveLength(2);
    for (const p of ps) {
      expect(p.spec.holderIdentity).toBe(POD);
      expect(p.spec.acquireTime).toBeUndefined();
      expect(p.spec.renewTime).toBeDefined();
    }
    expect(r.files['lease-renewed']).toBe('102000\n');
  });

  test('a renewal the API refuses (409: another writer came first) or never answers records nothing: the last success ages', () => {
    const r = runLease({
      leader: POD,
      gets: { mine: lease('8', { holderIdentity: POD }) },
      patchCode: 409,
      files: { 'lease-renewed': '90000\n' },
      steps: 'step',
    });
    expect(patches(r)).toHaveLength(1);
    expect(r.files['lease-renewed']).toBe('90000\n');
    expect(r.stderr).toContain('409');
  });

  test('a Lease another pod holds is not taken while its resourceVersion changes, however long that goes on', () => {
    const r = runLease({
      leader: POD,
      gets: { a: lease('20', { holderIdentity: OTHER }), b: lease('21', { holderIdentity: OTHER }) },
      steps: 'step; clock 110.00; answer b; step; clock 120.00; answer a; step; clock 130.00; answer b; step',
    });
    expect(patches(r)).toEqual([]);
    expect(r.stderr).toContain(`held by ${OTHER}`);
    expect(r.files['lease-renewed']).toBeUndefined();
  });

  test('a Lease another pod holds is taken once this pod saw the same resourceVersion for the lease duration on its own clock (not before), and the former holder is recorded', () => {
    const before = runLease({ leader: POD, gets: { a: lease('20', { holderIdentity: OTHER, leaseTransitions: 4 }) }, steps: 'step; clock 114.99; step' });
    expect(patches(before)).toEqual([]);
    const r = runLease({ leader: POD, gets: { a: lease('20', { holderIdentity: OTHER, leaseTransitions: 4 }) }, steps: 'step; clock 115.00; step' });
    const [p] = patches(r);
    expect(p.metadata).toEqual({ resourceVersion: '20' });
    expect(p.spec).toMatchObject({ holderIdentity: POD, leaseTransitions: 5 });
    expect(r.files['lease-expired-holder']).toBe(`${OTHER}\n`);
    expect(r.files['lease-renewed']).toBe('115000\n');
  });

  test('an API it cannot reach changes nothing: no renewal is recorded', () => {
    const r = runLease({ leader: POD, gets: { mine: lease('8', { holderIdentity: POD }) }, files: { 'lease-renewed': '90000\n' }, steps: 'down; step' });
    expect(patches(r)).toEqual([]);
    expect(r.files['lease-renewed']).toBe('90000\n');
    expect(r.stderr).toContain('cannot reach the Kubernetes API');
  });
});

describe('lease.sh: a pod the leader key does not name', () => {
  const mine = { mine: lease('30', { holderIdentity: POD }) };

  test('never takes a Lease, free or expired', () => {
    const r = runLease({ leader: OTHER, gets: { free: lease('7'), other: lease('9', { holderIdentity: OTHER }) }, steps: 'step; answer other; step; clock 200.00; step' });
    expect(patches(r)).toEqual([]);
  });

  test('keeps renewing a Lease it holds while its primary server still runs (postgres.sh refreshed $STATE_DIR/primary within 5 s)', () => {
    const r = runLease({ leader: OTHER, gets: mine, files: { primary: '98000\n' }, steps: 'step' });
    expect(patches(r).map((p) => p.spec.holderIdentity)).toEqual([POD]);
  });

  test('releases it (holder cleared, compare-and-swap) once that server has stopped ($STATE_DIR/primary gone): the named pod takes it at once', () => {
    const r = runLease({ leader: OTHER, gets: mine, files: { 'lease-renewed': '99000\n' }, steps: 'step' });
    const [p] = patches(r);
    expect(p).toEqual({ metadata: { resourceVersion: '30' }, spec: { holderIdentity: null, acquireTime: null, renewTime: null } });
    expect(r.files['lease-renewed']).toBeUndefined();
    expect(r.stderr).toContain('released Lease');
  });

  test('neither renews nor releases when postgres.sh stopped refreshing $STATE_DIR/primary (it may hang with its server running): the Lease expires', () => {
    const r = runLease({ leader: OTHER, gets: mine, files: { primary: '90000\n' }, steps: 'step' });
    expect(patches(r)).toEqual([]);
    expect(r.stderr).toContain('no longer renewing');
  });

  test('a Lease held by another pod removes any renewal record of its own', () => {
    const r = runLease({ leader: OTHER, gets: { other: lease('9', { holderIdentity: OTHER }) }, files: { 'lease-renewed': '99000\n' }, steps: 'step' });
    expect(r.files['lease-renewed']).toBeUndefined();
  });
});

describe('fencing.sh: the primary\'s side', () => {
  function fencing(snippet: string, files: { [name: string]: string }, uptime = '100.00'): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-fencing-'));
    try {
      for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
      fs.writeFileSync(path.join(dir, 'uptime'), `${uptime} 1.00\n`);
      fs.writeFileSync(path.join(dir, 'fencing.sh'), pgConfig.data['fencing.sh']);
      const r = spawnSync('bash', ['-c', `. "${dir}/fencing.sh"; ${snippet}`], {
        env: { PATH: process.env.PATH, STATE_DIR: dir, UPTIME_FILE: path.join(dir, 'uptime'), LEASE_RENEW_DEADLINE: '10' },
        encoding: 'utf8',
        // Not a socket on stdin: bash would take it for rshd and read ~/.bashrc.
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return r.stdout.trim() + r.stderr.trim();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test('the clock is /proc/uptime in ms', () => {
    expect(fencing('uptime_ms', {}, '4321.07')).toBe('4321070');
  });

  test.each([
    ['renewed 1 s ago', { 'lease-renewed': '99000\n' }, 'held'],
    ['renewed exactly the renew deadline ago', { 'lease-renewed': '90000\n' }, 'held'],
    ['renewed more than the renew deadline ago', { 'lease-renewed': '89990\n' }, 'not held'],
    ['never renewed (no record)', {}, 'not held'],
    ['an unreadable record', { 'lease-renewed': 'x\n' }, 'not held'],
  ])('lease_held: %s -> %s', (_what, files, expected) => {
    expect(fencing('if lease_held; then echo held; else echo not held; fi', files)).toBe(expected);
  });
});

describe('what is synthesized for the Lease', () => {
  const replicaSts = find(objs, 'StatefulSet', 'x-pg-replica');

  test('one Lease per cluster, <primary>-leader, with the lease duration and no holder (kubectl apply keeps the holder the sidecars write)', () => {
    const leases = byKind(objs, 'Lease');
    expect(leases).toHaveLength(1);
    expect(leases[0].apiVersion).toBe('coordination.k8s.io/v1');
    expect(leases[0].metadata.name).toBe(LEASE);
    expect(leases[0].spec).toEqual({ leaseDurationSeconds: 15 });
  });

  test('every PostgreSQL pod runs the lease sidecar with the only API token of its pod (the primary StatefulSet\'s: also the state sidecar\'s)', () => {
    for (const sts of [primarySts, replicaSts]) {
      const spec = sts.spec.template.spec;
      const withToken = spec.containers.filter((c: any) => (c.volumeMounts ?? []).some((m: any) => m.name === 'api-token')).map((c: any) => c.name);
      expect(withToken).toEqual(sts === primarySts ? ['lease', 'state'] : ['lease']);
      expect(spec.automountServiceAccountToken).toBe(false);
      const sidecar = spec.containers.find((c: any) => c.name === 'lease');
      expect(sidecar.command).toEqual(['sh', '/etc/ferretdb-postgres/lease.sh']);
      // STATE_DIR is the postgres container's; the lease sidecar never mounts the socket's RUN_DIR.
      const pg = spec.containers.find((c: any) => c.name === 'postgres');
      const stateMount = (c: any) => c.volumeMounts.find((m: any) => m.name === 'state');
      expect(stateMount(sidecar).mountPath).toBe(stateMount(pg).mountPath);
      expect(sidecar.volumeMounts.map((m: any) => m.name).sort()).toEqual(['api-token', 'config', 'state']);
    }
  });

  test('least privilege: get and patch on that one Lease by name, bound to the primary\'s and the replicas\' ServiceAccounts', () => {
    const role = find(objs, 'Role', LEASE);
    expect(role.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [LEASE], verbs: ['get', 'patch'] }]);
    const binding = find(objs, 'RoleBinding', LEASE);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: LEASE });
    const accounts = binding.subjects.map((s: any) => s.name).sort();
    expect(accounts).toEqual([primarySts.spec.template.spec.serviceAccountName, replicaSts.spec.template.spec.serviceAccountName].sort());
    // The replicas' ServiceAccount is bound to nothing else (the state ConfigMap stays the primary pod's).
    const others = byKind(objs, 'RoleBinding').filter((b: any) => b.metadata.name !== LEASE);
    for (const b of others) expect(b.subjects.map((s: any) => s.name)).not.toContain(replicaSts.spec.template.spec.serviceAccountName);
  });

  test('the renew deadline the postgres container fences at is 2/3 of the duration the sidecar expires by', () => {
    const pg = primarySts.spec.template.spec.containers.find((c: any) => c.name === 'postgres');
    const env = Object.fromEntries(pg.env.map((e: any) => [e.name, e.value]));
    expect(env.LEASE_RENEW_DEADLINE).toBe('10');
    expect(env.LEASE_DURATION).toBe('15');
    expect(Object.fromEntries(leaseSidecar.env.map((e: any) => [e.name, e.value])).LEASE_DURATION).toBe('15');
  });

  test('postgresLeaseDuration sets both; a value outside 6 s..10 min or not whole seconds fails at synth naming the prop and the value', () => {
    const custom = synth({ postgresLeaseDuration: Duration.seconds(30) });
    expect(byKind(custom, 'Lease')[0].spec.leaseDurationSeconds).toBe(30);
    const pg = find(custom, 'StatefulSet', 'x-pg-replica').spec.template.spec.containers.find((c: any) => c.name === 'postgres');
    expect(pg.env.find((e: any) => e.name === 'LEASE_RENEW_DEADLINE').value).toBe('20');
    expect(() => synth({ postgresLeaseDuration: Duration.seconds(5) })).toThrow(/postgresLeaseDuration.*5s/);
    expect(() => synth({ postgresLeaseDuration: Duration.millis(15500) })).toThrow(/postgresLeaseDuration.*15\.5s/);
    expect(() => synth({ postgresLeaseDuration: Duration.minutes(11) })).toThrow(/postgresLeaseDuration.*660s/);
  });
});
