import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PostgresBackend, ReplicationMode } from '../src';
import { byKind, containers, find, podSpecs, postgresConfigMap, synth } from './util';

const ASSETS = path.join(__dirname, '..', 'assets');
/** The bash scripts of the PostgreSQL pods (the postgres and agent containers, probes and hook). */
const POSTGRES_SCRIPTS = ['lib.sh', 'datadir.sh', 'fencing.sh', 'postgres.sh', 'agent.sh', 'lifecycle.sh'];
/** The POSIX sh script of the state sidecar (a curl image has no bash). */
const STATE_SCRIPT = 'cluster-state.sh';

const objs = synth();
const pgConfig = postgresConfigMap(objs);
const jobConfig = byKind(objs, 'ConfigMap').find((c) => c.data['create-secret.sh'] !== undefined);
/** The CloudNativePG backend's bootstrap Job script (the same script: a basic-auth Secret for one role). */
const basicAuthJobConfig = byKind(synth({ backend: PostgresBackend.cloudNativePG() }), 'ConfigMap')
  .find((c) => c.data['create-secret.sh'] !== undefined);

/** Writes the keys of a ConfigMap into a fresh directory, under their key names. */
function writeConfigMap(configMap: any): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-scripts-'));
  for (const [key, value] of Object.entries<string>(configMap.data)) fs.writeFileSync(path.join(dir, key), value);
  return dir;
}

function shellcheck(args: string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync('shellcheck', args, { cwd, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Every argv a container runs: command, probes and lifecycle hooks. */
function commandsOf(container: any): string[][] {
  const argvs: string[][] = [];
  if (container.command) argvs.push([...container.command, ...(container.args ?? [])]);
  for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
    if (probe?.exec) argvs.push(probe.exec.command);
  }
  for (const hook of [container.lifecycle?.preStop, container.lifecycle?.postStart]) {
    if (hook?.exec) argvs.push(hook.exec.command);
  }
  return argvs;
}

/** The ConfigMap key behind a file path in a container, or undefined when no ConfigMap is mounted there. */
function configMapKeyAt(spec: any, container: any, file: string): { configMap: any; key: string } | undefined {
  for (const mount of container.volumeMounts ?? []) {
    if (!file.startsWith(mount.mountPath + '/')) continue;
    const volume = spec.volumes.find((v: any) => v.name === mount.name);
    if (!volume?.configMap) continue;
    const configMap = find(objs, 'ConfigMap', volume.configMap.name);
    return { configMap, key: file.slice(mount.mountPath.length + 1) };
  }
  return undefined;
}

/** The environment lib.sh requires, for a pod whose ConfigMap is written to `dir`. */
function libEnv(dir: string, pod: string, pathVar = process.env.PATH): NodeJS.ProcessEnv {
  return {
    PATH: pathVar,
    LC_ALL: 'C',
    CONFIG_DIR: dir,
    RUN_DIR: dir,
    PGDATA: path.join(dir, 'pgdata'),
    POD_NAME: pod,
    PRIMARY_HOST: 'x-pg-rw',
    REPLICATION_USER: 'replicator',
    FERRETDB_USER: 'ferretdb',
    SLOT_PREFIX: 'fdb_',
  };
}

describe('shellcheck', () => {
  test('the PostgreSQL pod scripts, as the ConfigMap carries them, pass shellcheck -x', () => {
    const dir = writeConfigMap(pgConfig);
    try {
      const { status, output } = shellcheck(['-x', '-P', dir, '-s', 'bash', ...POSTGRES_SCRIPTS.map((s) => path.join(dir, s))], dir);
      expect(output).toBe('');
      expect(status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([STATE_SCRIPT, 'lease.sh'])('the sidecar script %s, as the ConfigMap carries it, passes shellcheck -s sh', (script) => {
    const dir = writeConfigMap(pgConfig);
    try {
      const { status, output } = shellcheck(['-s', 'sh', path.join(dir, script)], dir);
      expect(output).toBe('');
      expect(status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['StatefulSets', () => jobConfig],
    ['CloudNativePG', () => basicAuthJobConfig],
  ])('the bootstrap Job script (%s backend), as the ConfigMap carries it, passes shellcheck -s sh', (_backend, configMap) => {
    const file = 'create-secret.sh';
    const dir = writeConfigMap(configMap());
    try {
      const { status, output } = shellcheck(['-s', 'sh', path.join(dir, file)], dir);
      expect(output).toBe('');
      expect(status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('shellcheck does find problems (the check is not vacuous)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-scripts-'));
    try {
      fs.writeFileSync(path.join(dir, 'bad.sh'), '#!/bin/sh\nrm -rf $1/*\n');
      expect(shellcheck(['-s', 'sh', path.join(dir, 'bad.sh')], dir).status).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the ConfigMaps carry the scripts of assets/ unchanged', () => {
  test.each([...POSTGRES_SCRIPTS, STATE_SCRIPT, 'setup.sql'])('backends/statefulset/%s', (file) => {
    expect(pgConfig.data[file]).toEqual(fs.readFileSync(path.join(ASSETS, 'backends', 'statefulset', file), 'utf8'));
  });

  test('postgres/create-secret.sh', () => {
    expect(jobConfig.data['create-secret.sh']).toEqual(fs.readFileSync(path.join(ASSETS, 'postgres', 'create-secret.sh'), 'utf8'));
  });

  test('postgres/create-secret.sh (CloudNativePG backend)', () => {
    expect(basicAuthJobConfig.data['create-secret.sh'])
      .toEqual(fs.readFileSync(path.join(ASSETS, 'postgres', 'create-secret.sh'), 'utf8'));
  });

  test('every file of assets/ is shipped (queries.yaml with monitoring on)', () => {
    const monitored = postgresConfigMap(synth({ monitoring: {} }));
    const shipped = [...Object.keys(monitored.data), ...Object.keys(jobConfig.data), ...Object.keys(basicAuthJobConfig.data)];
    for (const dir of ['backends/statefulset', 'postgres', 'observability']) {
      for (const file of fs.readdirSync(path.join(ASSETS, dir))) expect(shipped).toContain(file);
    }
  });
});

describe('container commands', () => {
  test('every script a container runs exists in the ConfigMap mounted at its path, and runs with the interpreter of its shebang', () => {
    const seen: string[] = [];
    for (const { owner, spec } of podSpecs(objs)) {
      for (const c of spec.containers) {
        for (const argv of commandsOf(c)) {
          const script = argv.find((a) => /\.(sh|bash)$/.test(a));
          expect({ owner, container: c.name, argv, script: script !== undefined }).toEqual({ owner, container: c.name, argv, script: true });
          const at = configMapKeyAt(spec, c, script!);
          expect({ owner, script, mounted: at !== undefined }).toEqual({ owner, script, mounted: true });
          const content: string | undefined = at!.configMap.data[at!.key];
          expect({ owner, script, exists: content !== undefined }).toEqual({ owner, script, exists: true });
          const shebang = /^#!\s*(?:\/usr\/bin\/env\s+)?(\S+)/.exec(content!)![1];
          expect(path.basename(shebang)).toBe(argv[0]);
          seen.push(`${argv[0]} ${script}`);
        }
      }
    }
    expect(new Set(seen)).toEqual(new Set([
      'bash /etc/ferretdb-postgres/postgres.sh',
      'bash /etc/ferretdb-postgres/agent.sh',
      'bash /etc/ferretdb-postgres/lifecycle.sh',
      'sh /etc/ferretdb-postgres/cluster-state.sh',
      'sh /etc/ferretdb-postgres/lease.sh',
      'sh /scripts/create-secret.sh',
      'sh /etc/ferretdb/scripts/certificate-watch.sh',
    ]));
  });

  test('the lifecycle.sh arguments the probes and hook pass are the ones it handles', () => {
    const handled = [...pgConfig.data['lifecycle.sh'].matchAll(/^\s{2}(\w+)\)/gm)].map((m: RegExpMatchArray) => m[1]);
    for (const { container } of containers(objs).filter((c) => c.container.name === 'postgres')) {
      for (const argv of commandsOf(container).filter((a) => a.some((x) => x.endsWith('lifecycle.sh')))) {
        expect(handled).toContain(argv[argv.length - 1]);
      }
    }
    expect(handled).toEqual(expect.arrayContaining(['ready', 'live', 'stop']));
  });

  test('the files the scripts read from CONFIG_DIR are keys of the ConfigMap', () => {
    const scripts = POSTGRES_SCRIPTS.map((s) => pgConfig.data[s]).join('\n');
    const read = [...scripts.matchAll(/\$CONFIG_DIR\/([\w.]+)/g)].map((m: RegExpMatchArray) => m[1]);
    expect(read.length).toBeGreaterThan(3);
    for (const file of read) expect(Object.keys(pgConfig.data)).toContain(file);
  });

  test('the Secret keys the scripts read are the keys the bootstrap Job writes and FerretDB reads', () => {
    const scripts = POSTGRES_SCRIPTS.map((s) => pgConfig.data[s]).join('\n');
    const read = new Set([
      ...[...scripts.matchAll(/read_secret ([\w-]+)/g)].map((m: RegExpMatchArray) => m[1]),
      ...[...scripts.matchAll(/\$SECRET_DIR\/([\w-]+)/g)].map((m: RegExpMatchArray) => m[1]),
      ...[...scripts.matchAll(/%s\/([\w-]+password)/g)].map((m: RegExpMatchArray) => m[1]),
    ]);
    // The keys of the Opaque Secret (the line after TYPE=Opaque; the other shape is CloudNativePG's).
    const lines: string[] = jobConfig.data['create-secret.sh'].split('\n');
    const opaque = lines[lines.findIndex((l) => l.trim() === 'TYPE=Opaque') + 1];
    const written = new Set([...opaque.matchAll(/\\"([\w-]+)\\":\\"\$\(b64/g)].map((m: RegExpMatchArray) => m[1]));
    expect(read).toEqual(new Set(['replication-password', 'ferretdb-password']));
    expect(written).toEqual(read);
    for (const { container } of containers(objs).filter((c) => c.kind === 'Deployment' && c.container.name === 'ferretdb')) {
      expect(written).toContain(container.env.find((e: any) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef.key);
    }
  });
});

describe('environment of the PostgreSQL containers', () => {
  const allContainers = containers(objs).filter((c) => c.kind === 'StatefulSet');
  /** The postgres and agent containers (the state and lease sidecars run no PostgreSQL script). */
  const pgContainers = allContainers.filter((c) => !['state', 'lease'].includes(c.container.name));
  const envOf = (c: any) => Object.fromEntries(c.env.map((e: any) => [e.name, e]));

  test('the PostgreSQL pods run a postgres, an agent and a lease container; only the primary StatefulSet\'s pod adds the state sidecar', () => {
    const names = (sts: string) => find(objs, 'StatefulSet', sts).spec.template.spec.containers.map((c: any) => c.name);
    expect(names('x-pg-primary')).toEqual(['postgres', 'agent', 'lease', 'state']);
    expect(names('x-pg-replica')).toEqual(['postgres', 'agent', 'lease']);
  });

  test('every variable lib.sh requires is set on both postgres and agent containers of every StatefulSet', () => {
    const required = [...pgConfig.data['lib.sh'].matchAll(/^: "\$\{(\w+):\?/gm)].map((m: RegExpMatchArray) => m[1]);
    expect(required).toEqual(expect.arrayContaining(['PGDATA', 'POD_NAME', 'PRIMARY_HOST', 'REPLICATION_USER', 'FERRETDB_USER', 'SLOT_PREFIX']));
    expect(pgContainers.map((c) => c.container.name).sort()).toEqual(['agent', 'agent', 'postgres', 'postgres']);
    for (const { owner, container } of pgContainers) {
      const env = envOf(container);
      for (const name of required) {
        const e = env[name];
        expect({ owner, container: container.name, name, set: e !== undefined && (e.value !== undefined && e.value !== '' || e.valueFrom !== undefined) })
          .toEqual({ owner, container: container.name, name, set: true });
      }
    }
  });

  test('every ${X:?} a container\'s own script requires is set on it (the kubelet sets KUBERNETES_SERVICE_HOST and _PORT on every container)', () => {
    const required = (script: string) => [...pgConfig.data[script].matchAll(/\$\{(\w+):\?/g)].map((m: RegExpMatchArray) => m[1]);
    const kubelet = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'];
    expect(required(STATE_SCRIPT)).toEqual(expect.arrayContaining(['STATE_CONFIGMAP', ...kubelet]));
    for (const { owner, container } of allContainers) {
      const scripts = commandsOf(container).map((argv) => path.basename(argv.find((a) => a.endsWith('.sh'))!));
      const env = envOf(container);
      for (const name of new Set(scripts.flatMap(required))) {
        const where = `${owner}/${container.name}`;
        expect({ where, name, set: env[name] !== undefined || kubelet.includes(name) }).toEqual({ where, name, set: true });
      }
    }
  });

  test('POD_NAME comes from the downward API and the directories match the mounts', () => {
    for (const { owner, container } of pgContainers) {
      const env = envOf(container);
      expect(env.POD_NAME.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
      const spec = podSpecs(objs).find((p) => p.owner === owner)!.spec;
      const mountOf = (dir: string) => container.volumeMounts.find((m: any) => m.mountPath === dir);
      const volumeOf = (dir: string) => spec.volumes.find((v: any) => v.name === mountOf(dir)?.name);
      expect(volumeOf(env.CONFIG_DIR.value)?.configMap?.name).toBe(pgConfig.metadata.name);
      expect(volumeOf(env.SECRET_DIR.value)?.secret?.secretName).toBeDefined();
      expect(volumeOf(env.RUN_DIR.value)?.emptyDir).toBeDefined();
      expect(env.SLOT_PREFIX.value).toMatch(/^[a-z0-9_]+$/);
    }
    // The socket directory is the same emptyDir in both containers of a pod (the agent talks to postgres through it).
    for (const sts of byKind(objs, 'StatefulSet')) {
      const mounts = sts.spec.template.spec.containers.filter((c: any) => !['state', 'lease'].includes(c.name))
        .map((c: any) => c.volumeMounts.find((m: any) => m.mountPath === '/var/run/postgresql')?.name);
      expect(mounts).toEqual(['run', 'run']);
    }
  });

  test('PRIMARY_HOST is the read-write Service and BOOTSTRAP_POD the primary StatefulSet\'s pod 0', () => {
    for (const { container } of pgContainers) {
      const env = envOf(container);
      expect(env.PRIMARY_HOST.value).toBe('x-pg-rw');
      expect(find(objs, 'Service', env.PRIMARY_HOST.value).spec.ports[0].port).toBe(5432);
      expect(env.BOOTSTRAP_POD.value).toBe('x-pg-primary-0');
    }
  });

  test('MAX_REPLICATION_LAG_BYTES is 64MB in bytes by default on the postgres and agent containers of every StatefulSet', () => {
    for (const { owner, container } of pgContainers) {
      const where = `${owner}/${container.name}`;
      expect({ where, value: envOf(container).MAX_REPLICATION_LAG_BYTES?.value }).toEqual({ where, value: String(64 * 2 ** 20) });
    }
  });

  test.each([
    ['1GB', 2 ** 30],
    ['512kB', 512 * 2 ** 10],
    ['16MB', 16 * 2 ** 20],
  ])('maxReplicationLag %s gives MAX_REPLICATION_LAG_BYTES %i on the postgres and agent containers of every StatefulSet', (lag, bytes) => {
    const lagged = containers(synth({ maxReplicationLag: lag })).filter((c) => c.kind === 'StatefulSet' && !['state', 'lease'].includes(c.container.name));
    expect(lagged).toHaveLength(4);
    for (const { owner, container } of lagged) {
      const where = `${owner}/${container.name}`;
      expect({ where, value: envOf(container).MAX_REPLICATION_LAG_BYTES?.value }).toEqual({ where, value: String(bytes) });
    }
  });

  test('lifecycle.sh\'s fallback lag bound equals the constructs\' default (64MB)', () => {
    expect(pgConfig.data['lifecycle.sh']).toContain(`\${MAX_REPLICATION_LAG_BYTES:-${64 * 2 ** 20}}`);
  });
});

describe('the state sidecar\'s container', () => {
  const sts = find(objs, 'StatefulSet', 'x-pg-primary');
  const spec = sts.spec.template.spec;
  const state = spec.containers.find((c: any) => c.name === 'state');
  const postgres = spec.containers.find((c: any) => c.name === 'postgres');
  const envOf = (c: any) => Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
  const volumeAt = (c: any, dir: string) => spec.volumes.find((v: any) => v.name === c.volumeMounts.find((m: any) => m.mountPath === dir)?.name);

  test('runs cluster-state.sh with the bootstrap Job\'s curl image', () => {
    expect(state.command).toEqual(['sh', '/etc/ferretdb-postgres/cluster-state.sh']);
    expect(state.image).toBe(byKind(objs, 'Job')[0].spec.template.spec.containers[0].image);
    expect(state.image).toMatch(/^curlimages\/curl:/);
  });

  test('STATE_CONFIGMAP names the state ConfigMap, which exists and is the one its Role may get and patch', () => {
    const name = envOf(state).STATE_CONFIGMAP;
    expect(name).toBe('x-pg-primary-state');
    expect(find(objs, 'ConfigMap', name).data).toBeUndefined();
    expect(find(objs, 'Role', name).rules[0].resourceNames).toEqual([name]);
  });

  test('its STATE_DIR is the postgres container\'s STATE_DIR on one emptyDir (cluster-state and system-identifier pass through it)', () => {
    expect(envOf(state).STATE_DIR).toBe(envOf(postgres).STATE_DIR);
    expect(volumeAt(state, envOf(state).STATE_DIR)).toBe(volumeAt(postgres, envOf(postgres).STATE_DIR));
    expect(volumeAt(state, envOf(state).STATE_DIR).emptyDir).toBeDefined();
    // The files the two scripts exchange.
    expect(pgConfig.data[STATE_SCRIPT]).toContain('"$STATE_DIR/cluster-state"');
    expect(pgConfig.data['datadir.sh']).toContain('"$STATE_DIR/cluster-state"');
    expect(pgConfig.data[STATE_SCRIPT]).toContain('"$STATE_DIR/system-identifier"');
    expect(pgConfig.data['postgres.sh']).toContain('"$STATE_DIR/system-identifier"');
  });

  test('the only container with an API token never sees the server\'s socket directory (no peer login as postgres)', () => {
    const socketVolume = volumeAt(postgres, envOf(postgres).RUN_DIR).name;
    expect(state.volumeMounts.map((m: any) => m.name)).not.toContain(socketVolume);
    expect(envOf(state).RUN_DIR).toBeUndefined();
  });

  test('TOKEN_DIR is a projected volume holding exactly the token, ca.crt and namespace files cluster-state.sh reads', () => {
    const volume = volumeAt(state, envOf(state).TOKEN_DIR);
    expect(volume.projected).toBeDefined();
    const files = volume.projected.sources.flatMap((src: any) => [
      ...src.serviceAccountToken ? [src.serviceAccountToken.path] : [],
      ...(src.configMap?.items ?? []).map((i: any) => i.path),
      ...(src.downwardAPI?.items ?? []).map((i: any) => i.path),
    ]);
    const read = [...pgConfig.data[STATE_SCRIPT].matchAll(/\$TOKEN_DIR\/([\w.]+)/g)].map((m: RegExpMatchArray) => m[1]);
    expect(files.sort()).toEqual(['ca.crt', 'namespace', 'token']);
    expect([...new Set(read)].sort()).toEqual(files);
    expect(volume.projected.sources.find((src: any) => src.configMap).configMap.name).toBe('kube-root-ca.crt');
    expect(volume.projected.sources.find((src: any) => src.downwardAPI).downwardAPI.items[0].fieldRef.fieldPath).toBe('metadata.namespace');
  });

  test('needs no writable /tmp: cluster-state.sh writes only under $STATE_DIR (no here-documents, mktemp or /tmp)', () => {
    const script: string = pgConfig.data[STATE_SCRIPT];
    expect(script).not.toMatch(/<<|mktemp|\/tmp|TMPDIR/);
    const code = script.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    const writes = [...code.matchAll(/>\s*"([^"]+)"/g)].map((m: RegExpMatchArray) => m[1]);
    expect(writes.length).toBeGreaterThan(0);
    for (const target of writes) expect(target).toMatch(/^\$STATE_DIR\//);
  });
});

describe('lib.sh against the ConfigMap it is shipped with', () => {
  function libsh(snippet: string, configMap: any): string {
    const dir = writeConfigMap(configMap);
    try {
      return execFileSync('bash', ['-c', `set -euo pipefail; . "$CONFIG_DIR/lib.sh"; ${snippet}`], {
        env: libEnv(dir, 'x-pg-replica-0', process.env.PATH),
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test('current_leader reads the leader key', () => {
    expect(libsh('current_leader', pgConfig)).toBe('x-pg-primary-0');
    expect(libsh('current_leader', postgresConfigMap(synth({ currentPrimary: 'x-pg-replica-1' })))).toBe('x-pg-replica-1');
  });

  test('members lists every PostgreSQL pod', () => {
    expect(libsh('members', pgConfig).trim().split('\n')).toEqual(['x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1']);
  });

  test('the standby conninfo goes through PRIMARY_HOST with the pod name as application_name and no password', () => {
    const conninfo = libsh('leader_conninfo', pgConfig);
    expect(conninfo).toContain('host=x-pg-rw ');
    expect(conninfo).toContain('user=replicator ');
    expect(conninfo).toMatch(/application_name=x-pg-replica-0$/);
    expect(conninfo).not.toMatch(/password=/);
  });

  test('the socket-only server of initialisation does not wait for synchronous standbys (none can connect to it)', () => {
    // With ReplicationMode.synchronousQuorum the ConfigMap's postgresql.conf names standbys; the
    // server init_primary starts listens on no address, so a commit there (CREATE ROLE in
    // setup.sql) would wait for a standby forever and the cluster could never bootstrap.
    const sync = postgresConfigMap(synth({ replicationMode: ReplicationMode.synchronousQuorum(1) }));
    expect(sync.data['postgresql.conf']).toMatch(/^synchronous_standby_names = 'ANY 1/m);
    const dir = writeConfigMap(sync);
    try {
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(bin);
      // A pg_ctl that records its arguments, one per line.
      fs.writeFileSync(path.join(bin, 'pg_ctl'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > "${dir}/pg_ctl.args"\n`, { mode: 0o755 });
      execFileSync('bash', ['-c', 'set -euo pipefail; . "$CONFIG_DIR/lib.sh"; start_local_server'], {
        env: libEnv(dir, 'x-pg-primary-0', `${bin}:${process.env.PATH}`),
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const args = fs.readFileSync(path.join(dir, 'pg_ctl.args'), 'utf8').split('\n');
      const options = args[args.indexOf('-o') + 1];
      expect(options).toContain('listen_addresses=\'\'');
      expect(options).toMatch(/synchronous_standby_names=(''|""|\s|$)|synchronous_commit=(local|off)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('lib.sh refuses to run without its required variables', () => {
    const dir = writeConfigMap(pgConfig);
    try {
      const r = spawnSync('bash', ['-c', '. "$0/lib.sh"', dir], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('PGDATA');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('create-secret.sh (with a stub curl)', () => {
  function runJob(httpCode: string, jobObjs: any[] = objs): { status: number | null; stdout: string; stderr: string; posted?: any; url?: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-job-'));
    try {
      const sa = path.join(dir, 'sa');
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(sa);
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(sa, 'token'), 'stub-token');
      fs.writeFileSync(path.join(sa, 'namespace'), 'orders');
      fs.writeFileSync(path.join(sa, 'ca.crt'), 'stub-ca');
      // Records the request body and URL, writes a response, prints the HTTP code.
      fs.writeFileSync(path.join(bin, 'curl'), [
        '#!/bin/sh',
        'out=""; data=""',
        'while [ $# -gt 0 ]; do',
        '  case "$1" in',
        '    -o) out=$2; shift ;;',
        '    --data-binary) data=${2#@}; shift ;;',
        '    -w|-H|-X|--cacert) shift ;;',
        '    -*) ;;',
        '    *) url=$1 ;;',
        '  esac',
        '  shift',
        'done',
        `cp "$data" "${dir}/posted.json"`,
        `printf '%s' "$url" > "${dir}/url"`,
        'echo "{}" > "$out"',
        `printf '%s' "${httpCode}"`,
        '',
      ].join('\n'), { mode: 0o755 });
      const job = byKind(jobObjs, 'Job')[0].spec.template.spec.containers[0];
      const env: { [k: string]: string } = {
        PATH: `${bin}:${process.env.PATH}`, SA_DIR: sa, KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', TMPDIR: dir,
      };
      for (const e of job.env) env[e.name] = e.value;
      // The script the Job's command runs, from the ConfigMap mounted at /scripts.
      const file = path.basename(job.command[1]);
      const script = byKind(jobObjs, 'ConfigMap').find((c) => c.data[file] !== undefined).data[file];
      fs.writeFileSync(path.join(dir, file), script);
      const r = spawnSync('sh', [path.join(dir, file)], { env, encoding: 'utf8' });
      const postedFile = path.join(dir, 'posted.json');
      return {
        status: r.status,
        stdout: r.stdout,
        stderr: r.stderr,
        posted: fs.existsSync(postedFile) ? JSON.parse(fs.readFileSync(postedFile, 'utf8')) : undefined,
        url: fs.existsSync(path.join(dir, 'url')) ? fs.readFileSync(path.join(dir, 'url'), 'utf8') : undefined,
      };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test('posts a Secret with both keys holding random 64-hex-character passwords', () => {
    const r = runJob('201');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.url).toBe('https://10.0.0.1:443/api/v1/namespaces/orders/secrets');
    expect(r.posted.kind).toBe('Secret');
    expect(r.posted.type).toBe('Opaque');
    expect(r.posted.metadata.name).toBe('x-credentials');
    expect(r.posted.metadata.namespace).toBe('orders');
    expect(r.posted.metadata.labels['app.kubernetes.io/instance']).toBe('x');
    expect(Object.keys(r.posted.data).sort()).toEqual(['ferretdb-password', 'replication-password']);
    const passwords = Object.values<string>(r.posted.data).map((b64) => Buffer.from(b64, 'base64').toString());
    for (const p of passwords) expect(p).toMatch(/^[0-9a-f]{64}$/);
    expect(passwords[0]).not.toEqual(passwords[1]);
  });

  test('posts a kubernetes.io/basic-auth Secret with the role name and a random password for the CloudNativePG backend', () => {
    const r = runJob('201', synth({ backend: PostgresBackend.cloudNativePG() }));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.posted.type).toBe('kubernetes.io/basic-auth');
    expect(r.posted.metadata.name).toBe('x-credentials');
    expect(Object.keys(r.posted.data).sort()).toEqual(['password', 'username']);
    expect(Buffer.from(r.posted.data.username, 'base64').toString()).toBe('ferretdb');
    expect(Buffer.from(r.posted.data.password, 'base64').toString()).toMatch(/^[0-9a-f]{64}$/);
  });

  test('leaves an existing Secret alone (409) and fails on other errors', () => {
    expect(runJob('409').status).toBe(0);
    const failed = runJob('403');
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain('403');
  });
});

describe('cluster-state.sh (the state sidecar, with a stub curl)', () => {
  const state = find(objs, 'StatefulSet', 'x-pg-primary').spec.template.spec.containers.find((c: any) => c.name === 'state');
  const STATE_CONFIGMAP = state.env.find((e: any) => e.name === 'STATE_CONFIGMAP').value;
  const ID = '7301234567890123456';

  interface Request {
    readonly method: string;
    readonly url: string;
    readonly headers: string[];
    readonly data?: string;
    readonly cacert?: string;
  }

  interface StateRun {
    readonly status: number | null;
    readonly stderr: string;
    /** The cluster-state file after the run (undefined: not written). */
    readonly published?: string;
    readonly requests: Request[];
    /** The exit status of check() when it was sourced. */
    readonly check?: string;
  }

  /**
   * Runs cluster-state.sh (or, with `sourced`, only its check()) against a stub curl that answers
   * GET with `get` ({code, body} or a curl exit status) and PATCH with `patchCode`.
   */
  function runState(o: {
    get: { code: number; body: any } | { curlExit: number };
    patchCode?: number;
    localId?: string;
    stale?: string;
    sourced?: boolean;
    /** Answer compact JSON (as to a client that is not curl) instead of pretty-printed. */
    compact?: boolean;
    interval?: string;
    timeoutMs?: number;
  }): StateRun {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-state-'));
    try {
      const [token, bin, run] = ['token', 'bin', 'run'].map((d) => path.join(dir, d));
      for (const d of [token, bin, run]) fs.mkdirSync(d);
      fs.writeFileSync(path.join(token, 'token'), 'stub-token');
      fs.writeFileSync(path.join(token, 'namespace'), 'orders');
      fs.writeFileSync(path.join(token, 'ca.crt'), 'stub-ca');
      if (o.localId) fs.writeFileSync(path.join(run, 'system-identifier'), `${o.localId}\n`);
      if (o.stale) fs.writeFileSync(path.join(run, 'cluster-state'), o.stale);
      // The API server pretty-prints JSON for a curl User-Agent (apiserver responsewriters isPrettyPrint).
      const get = 'curlExit' in o.get ? o.get : { code: o.get.code, body: JSON.stringify(o.get.body, null, o.compact ? undefined : 4) };
      fs.writeFileSync(path.join(dir, 'get.body'), 'body' in get ? get.body : '');
      // Records each request as JSON lines; answers like curl -w '\n%{http_code}'.
      fs.writeFileSync(path.join(bin, 'curl'), [
        '#!/bin/sh',
        'method=GET; data=""; cacert=""; url=""; headers=""',
        'while [ $# -gt 0 ]; do',
        '  case "$1" in',
        '    -X) method=$2; shift ;;',
        '    -H) headers="$headers$2|"; shift ;;',
        '    --data) data=$2; shift ;;',
        '    --cacert) cacert=$2; shift ;;',
        '    -w|--max-time) shift ;;',
        '    -*) ;;',
        '    *) url=$1 ;;',
        '  esac',
        '  shift',
        'done',
        // \037 (octal: POSIX printf has no \x): the field separator.
        `printf '%s\\037%s\\037%s\\037%s\\037%s\\n' "$method" "$url" "$headers" "$data" "$cacert" >> "${dir}/requests"`,
        'if [ "$method" = GET ]; then',
        'curlExit' in get ? `  echo "curl: (7) Failed to connect" >&2; exit ${get.curlExit}` : `  cat "${dir}/get.body"; printf '\\n%s' ${get.code}`,
        'else',
        `  printf '{}\\n%s' ${o.patchCode ?? 200}`,
        'fi',
        '',
      ].join('\n'), { mode: 0o755 });
      fs.writeFileSync(path.join(dir, STATE_SCRIPT), pgConfig.data[STATE_SCRIPT]);
      const env: { [k: string]: string } = {
        PATH: `${bin}:${process.env.PATH}`, KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', POD_NAME: 'x-pg-primary-0',
      };
      for (const e of state.env) if (e.value !== undefined) env[e.name] = e.value;
      Object.assign(env, { STATE_DIR: run, TOKEN_DIR: token, STATE_INTERVAL: o.interval ?? '30' });
      const script = path.join(dir, STATE_SCRIPT);
      const errFile = path.join(dir, 'stderr');
      const errFd = fs.openSync(errFile, 'w');
      let r;
      try {
        r = spawnSync('sh', o.sourced
          // The script without its loop, then one check().
          ? ['-c', 'eval "$(sed \'/^trap /,$d\' "$0")"; check; echo "check=$?"', script]
          : [script], {
          env, encoding: 'utf8', stdio: ['ignore', 'pipe', errFd], timeout: o.timeoutMs ?? 10_000, killSignal: 'SIGTERM',
        });
      } finally {
        fs.closeSync(errFd);
      }
      const requests = fs.existsSync(path.join(dir, 'requests'))
        ? fs.readFileSync(path.join(dir, 'requests'), 'utf8').split('\n').filter(Boolean).map((l) => {
          const [method, url, headers, data, cacert] = l.split('\x1f');
          return { method, url, headers: headers.split('|').filter(Boolean), data: data || undefined, cacert: cacert || undefined };
        })
        : [];
      const statePath = path.join(run, 'cluster-state');
      return {
        status: r.status,
        stderr: fs.readFileSync(errFile, 'utf8'),
        published: fs.existsSync(statePath) ? fs.readFileSync(statePath, 'utf8') : undefined,
        requests,
        check: /check=(\d+)/.exec(r.stdout ?? '')?.[1],
      };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  const configMap = (data?: { [key: string]: string }) => ({
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: {
      name: STATE_CONFIGMAP,
      annotations: { 'ferretdb.cdk8s.io/note': 'systemIdentifier is written by the primary pod once the cluster is initialised' },
    },
    ...data ? { data } : {},
  });

  test('reads the state ConfigMap with the projected token and CA, at the in-cluster API address of its namespace', () => {
    const r = runState({ get: { code: 200, body: configMap() }, sourced: true });
    expect(r.requests).toHaveLength(1);
    const [get] = r.requests;
    expect(get.method).toBe('GET');
    expect(get.url).toBe(`https://10.0.0.1:443/api/v1/namespaces/orders/configmaps/${STATE_CONFIGMAP}`);
    expect(get.headers).toEqual(['Authorization: Bearer stub-token']);
    expect(get.cacert).toMatch(/\/token\/ca\.crt$/);
  });

  test('GET 200 without systemIdentifier writes "new" (initdb allowed) and patches nothing', () => {
    const r = runState({ get: { code: 200, body: configMap() }, sourced: true });
    expect(r.check).toBe('0');
    expect(r.published).toBe('new\n');
    expect(r.requests.map((q) => q.method)).toEqual(['GET']);
  });

  test.each([['pretty-printed', false], ['compact', true]])('GET 200 with a systemIdentifier (%s JSON) writes "initialized <id>" (initdb refused)', (_what, compact) => {
    const r = runState({ get: { code: 200, body: configMap({ systemIdentifier: ID, initializedBy: 'x-pg-primary-0' }) }, sourced: true, compact });
    expect(r.check).toBe('0');
    expect(r.published).toBe(`initialized ${ID}\n`);
    expect(r.requests.map((q) => q.method)).toEqual(['GET']);
  });

  test('a local system-identifier with none recorded is recorded with a merge PATCH, then published', () => {
    const r = runState({ get: { code: 200, body: configMap() }, localId: ID, sourced: true });
    expect(r.requests.map((q) => q.method)).toEqual(['GET', 'PATCH']);
    const patch = r.requests[1];
    expect(patch.url).toBe(r.requests[0].url);
    expect(patch.headers).toEqual(expect.arrayContaining(['Content-Type: application/merge-patch+json', 'Authorization: Bearer stub-token']));
    expect(JSON.parse(patch.data!)).toEqual({ data: { systemIdentifier: ID, initializedBy: 'x-pg-primary-0' } });
    expect(r.published).toBe(`initialized ${ID}\n`);
    expect(r.stderr).toContain(`recorded system identifier ${ID}`);
  });

  test('a recorded identifier is never overwritten, even by a different local one (it warns instead)', () => {
    const r = runState({ get: { code: 200, body: configMap({ systemIdentifier: ID }) }, localId: '7309999999999999999', sourced: true });
    expect(r.requests.map((q) => q.method)).toEqual(['GET']);
    expect(r.published).toBe(`initialized ${ID}\n`);
    expect(r.stderr).toContain('WARNING: this pod\'s data has system identifier 7309999999999999999, the ConfigMap records 7301234567890123456');
  });

  test.each([404, 403, 500])('GET %i writes nothing: the previous answer is left to go stale (postgres.sh then refuses initdb)', (code) => {
    const r = runState({ get: { code, body: { kind: 'Status', code } }, stale: 'new\n', sourced: true });
    expect(r.check).toBe('1');
    expect(r.published).toBe('new\n');
    expect(r.requests.map((q) => q.method)).toEqual(['GET']);
    expect(r.stderr).toContain(`failed with HTTP ${code}`);
  });

  test('an unreachable API (curl fails) writes nothing', () => {
    const r = runState({ get: { curlExit: 7 }, sourced: true });
    expect(r.check).toBe('1');
    expect(r.published).toBeUndefined();
    expect(r.stderr).toContain('cannot reach the Kubernetes API');
  });

  test('the loop keeps checking after failures and exits 0 on SIGTERM', () => {
    const r = runState({ get: { code: 500, body: {} }, interval: '1', timeoutMs: 2500 });
    expect(r.status).toBe(0);
    expect(r.requests.filter((q) => q.method === 'GET').length).toBeGreaterThanOrEqual(2);
    expect(r.published).toBeUndefined();
  });

  test('the loop publishes a fresh answer on each pass (postgres.sh accepts answers at most 30 s old)', () => {
    const r = runState({ get: { code: 200, body: configMap({ systemIdentifier: ID }) }, interval: '1', timeoutMs: 2500 });
    expect(r.status).toBe(0);
    expect(r.requests.length).toBeGreaterThanOrEqual(2);
    expect(r.published).toBe(`initialized ${ID}\n`);
    expect(Number(state.env.find((e: any) => e.name === 'STATE_INTERVAL')?.value ?? 5)).toBeLessThan(30);
  });
});
