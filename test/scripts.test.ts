import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReplicationMode } from '../src';
import { byKind, containers, find, podSpecs, postgresConfigMap, synth } from './util';

const ASSETS = path.join(__dirname, '..', 'assets');
const POSTGRES_SCRIPTS = ['lib.sh', 'postgres.sh', 'agent.sh', 'lifecycle.sh'];

const objs = synth();
const pgConfig = postgresConfigMap(objs);
const jobConfig = byKind(objs, 'ConfigMap').find((c) => c.data['create-secret.sh'] !== undefined);

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

  test('the bootstrap Job script, as the ConfigMap carries it, passes shellcheck -s sh', () => {
    const dir = writeConfigMap(jobConfig);
    try {
      const { status, output } = shellcheck(['-s', 'sh', path.join(dir, 'create-secret.sh')], dir);
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
  test.each([...POSTGRES_SCRIPTS, 'setup.sql'])('postgres/%s', (file) => {
    expect(pgConfig.data[file]).toEqual(fs.readFileSync(path.join(ASSETS, 'postgres', file), 'utf8'));
  });

  test('credentials/create-secret.sh', () => {
    expect(jobConfig.data['create-secret.sh']).toEqual(fs.readFileSync(path.join(ASSETS, 'credentials', 'create-secret.sh'), 'utf8'));
  });

  test('every file of assets/ is shipped', () => {
    const shipped = [...Object.keys(pgConfig.data), ...Object.keys(jobConfig.data)];
    for (const dir of ['postgres', 'credentials']) {
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
      'sh /scripts/create-secret.sh',
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
    const written = new Set([...jobConfig.data['create-secret.sh'].matchAll(/"([\w-]+)":"\$\(b64/g)].map((m: RegExpMatchArray) => m[1]));
    expect(read).toEqual(new Set(['replication-password', 'ferretdb-password']));
    expect(written).toEqual(read);
    for (const { container } of containers(objs).filter((c) => c.kind === 'Deployment')) {
      expect(written).toContain(container.env.find((e: any) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef.key);
    }
  });
});

describe('environment of the PostgreSQL containers', () => {
  const pgContainers = containers(objs).filter((c) => c.kind === 'StatefulSet');
  const envOf = (c: any) => Object.fromEntries(c.env.map((e: any) => [e.name, e]));

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

  test('every ${X:?} a container\'s own script requires is set on it', () => {
    const required = (script: string) => [...pgConfig.data[script].matchAll(/\$\{(\w+):\?/g)].map((m: RegExpMatchArray) => m[1]);
    for (const { owner, container } of pgContainers) {
      const scripts = commandsOf(container).map((argv) => path.basename(argv.find((a) => a.endsWith('.sh'))!));
      const env = envOf(container);
      for (const name of new Set(scripts.flatMap(required))) {
        const where = `${owner}/${container.name}`;
        expect({ where, name, set: env[name] !== undefined }).toEqual({ where, name, set: true });
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
      const mounts = sts.spec.template.spec.containers.map((c: any) => c.volumeMounts.find((m: any) => m.mountPath === '/var/run/postgresql')?.name);
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
  function runJob(httpCode: string): { status: number | null; stdout: string; stderr: string; posted?: any; url?: string } {
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
      const job = byKind(objs, 'Job')[0].spec.template.spec.containers[0];
      const env: { [k: string]: string } = {
        PATH: `${bin}:${process.env.PATH}`, SA_DIR: sa, KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', TMPDIR: dir,
      };
      for (const e of job.env) env[e.name] = e.value;
      fs.writeFileSync(path.join(dir, 'create-secret.sh'), jobConfig.data['create-secret.sh']);
      const r = spawnSync('sh', [path.join(dir, 'create-secret.sh')], { env, encoding: 'utf8' });
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
    expect(r.posted.metadata.name).toBe('x-credentials');
    expect(r.posted.metadata.namespace).toBe('orders');
    expect(r.posted.metadata.labels['app.kubernetes.io/instance']).toBe('x');
    expect(Object.keys(r.posted.data).sort()).toEqual(['ferretdb-password', 'replication-password']);
    const passwords = Object.values<string>(r.posted.data).map((b64) => Buffer.from(b64, 'base64').toString());
    for (const p of passwords) expect(p).toMatch(/^[0-9a-f]{64}$/);
    expect(passwords[0]).not.toEqual(passwords[1]);
  });

  test('leaves an existing Secret alone (409) and fails on other errors', () => {
    expect(runJob('409').status).toBe(0);
    const failed = runJob('403');
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toContain('403');
  });
});
