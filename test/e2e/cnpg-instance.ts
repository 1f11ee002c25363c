/**
 * A throwaway PostgreSQL 15 configured as CloudNativePG 1.30 configures an instance from a
 * Cluster's spec, and bootstrapped as its `initdb` bootstrap does: no operator, no Kubernetes,
 * only the files and SQL the operator would write and run (cloudnative-pg `pkg/postgres/
 * configuration.go`, `pkg/management/postgres/initdb.go`, `internal/management/controller/roles`,
 * `internal/cmd/manager/instance/run/lifecycle/run.go`, all at v1.30.0).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PG_BIN } from './documentdb';

/** CloudNativePG's `GlobalDefaultSettings` that matter outside a pod (the log settings are left out). */
export const CNPG_DEFAULT_PARAMETERS: { readonly [name: string]: string } = {
  dynamic_shared_memory_type: 'posix',
  full_page_writes: 'on',
  max_parallel_workers: '32',
  max_worker_processes: '32',
  max_replication_slots: '32',
  shared_memory_type: 'mmap',
  ssl_max_protocol_version: 'TLSv1.3',
  ssl_min_protocol_version: 'TLSv1.3',
  wal_keep_size: '512MB',
  wal_level: 'logical',
  wal_log_hints: 'on',
  wal_sender_timeout: '5s',
  wal_receiver_timeout: '5s',
};

/** pg_hba.conf as CloudNativePG 1.30 renders it: its fixed rules, the Cluster's rules, its default rule. */
export function cnpgHbaConf(userRules: string[]): string {
  return [
    '# FIXED RULES',
    'local all cnpg_metrics_exporter peer map=cnpg_metrics_exporter',
    'local all all peer map=local',
    'hostssl postgres streaming_replica all cert map=cnpg_streaming_replica',
    'hostssl replication streaming_replica all cert map=cnpg_streaming_replica',
    'hostssl all cnpg_pooler_pgbouncer all cert map=cnpg_pooler_pgbouncer',
    '# USER-DEFINED RULES',
    ...userRules,
    '# DEFAULT RULES',
    'host all all all scram-sha-256',
    '',
  ].join('\n');
}

/** pg_ident.conf as CloudNativePG 1.30 renders it (the operating system user is `postgres`). */
export function cnpgIdentConf(): string {
  return [
    'local postgres postgres',
    'cnpg_streaming_replica streaming_replica streaming_replica',
    'cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer',
    'cnpg_metrics_exporter postgres cnpg_metrics_exporter',
    '',
  ].join('\n');
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface RunOptions {
  readonly env?: { [k: string]: string };
  readonly asPostgres?: boolean;
  /** Run inside this network namespace. */
  readonly netns?: string;
}

/** A command with no PG* variables from the caller's environment. */
function run(cmd: string, args: string[], opts: RunOptions = {}): RunResult {
  const env: { [k: string]: string } = { PATH: process.env.PATH ?? '/usr/bin:/bin', PGPASSFILE: '/nonexistent/pgpass', ...opts.env };
  let argv = opts.asPostgres
    ? ['runuser', '-u', 'postgres', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), cmd, ...args]
    : [cmd, ...args];
  if (opts.netns) argv = ['ip', 'netns', 'exec', opts.netns, ...argv];
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function check(what: string, r: RunResult): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

export interface InstanceOptions {
  /** `spec.postgresql.parameters` plus any environment exception. */
  readonly parameters: { readonly [name: string]: string };
  /** `spec.postgresql.shared_preload_libraries`. */
  readonly sharedPreloadLibraries: string[];
  /** `spec.postgresql.pg_hba`. */
  readonly pgHba: string[];
  /**
   * The pod's address. The server runs in its own network namespace, as in a pod: loopback
   * (127.0.0.1, ::1) for DocumentDB's and pg_cron's own connections, and this address, from
   * which connections come from outside loopback, as FerretDB's do from another pod.
   */
  readonly podIp: string;
}

/** PostgreSQL's port in the pod. */
const PORT = 5432;

/**
 * One PostgreSQL instance in a temporary directory and its own network namespace, with a
 * throwaway CA and server certificate.
 */
export class CnpgInstance {
  public static create(o: InstanceOptions): CnpgInstance {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnpg-bootstrap-'));
    const instance = new CnpgInstance(dir, `cnpg-bootstrap-${process.pid}-${path.basename(dir).slice(-6)}`, o);
    try {
      instance.init();
    } catch (e) {
      instance.destroy();
      throw e;
    }
    return instance;
  }

  public readonly data: string;
  public readonly socketDir: string;
  public readonly caFile: string;
  public readonly logFile: string;

  private netnsCreated = false;

  private constructor(public readonly dir: string, public readonly netns: string, private readonly o: InstanceOptions) {
    this.data = path.join(dir, 'data');
    this.socketDir = path.join(dir, 'run');
    this.caFile = path.join(dir, 'tls', 'ca.crt');
    this.logFile = path.join(dir, 'postgres.log');
  }

  /** initdb as CloudNativePG runs it, then the configuration files it writes. */
  private init(): void {
    check('ip netns add', run('ip', ['netns', 'add', this.netns]));
    this.netnsCreated = true;
    check('lo up', run('ip', ['link', 'set', 'lo', 'up'], { netns: this.netns }));
    check('pod address', run('ip', ['addr', 'add', `${this.o.podIp}/32`, 'dev', 'lo'], { netns: this.netns }));
    const tls = path.join(this.dir, 'tls');
    fs.mkdirSync(tls);
    fs.mkdirSync(this.socketDir);
    this.certificates(tls);
    check('chown', run('chown', ['-R', 'postgres:postgres', this.dir]));
    check('initdb', run(`${PG_BIN}/initdb`, ['--username', 'postgres', '-D', this.data, '--no-sync'], { asPostgres: true }));
    // CloudNativePG's order: its defaults, the Cluster's parameters, then what it fixes itself.
    const settings: { [name: string]: string } = {
      ...CNPG_DEFAULT_PARAMETERS,
      ...this.o.parameters,
      shared_preload_libraries: this.o.sharedPreloadLibraries.join(','),
      hot_standby: 'true',
      listen_addresses: '*',
      port: String(PORT),
      restart_after_crash: 'false',
      ssl: 'on',
      ssl_cert_file: path.join(tls, 'server.crt'),
      ssl_key_file: path.join(tls, 'server.key'),
      ssl_ca_file: this.caFile,
      unix_socket_directories: this.socketDir,
      hba_file: path.join(this.data, 'pg_hba.conf'),
      ident_file: path.join(this.data, 'pg_ident.conf'),
    };
    const conf = Object.entries(settings).map(([k, v]) => `${k} = '${v.replace(/'/g, "''")}'`).join('\n');
    fs.writeFileSync(path.join(this.data, 'custom.conf'), `${conf}\n`);
    fs.appendFileSync(path.join(this.data, 'postgresql.conf'), "\ninclude 'custom.conf'\n");
    this.writeHba(this.o.pgHba);
    fs.writeFileSync(path.join(this.data, 'pg_ident.conf'), cnpgIdentConf());
    check('chown', run('chown', ['-R', 'postgres:postgres', this.dir]));
  }

  private certificates(tls: string): void {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    const f = (name: string) => path.join(tls, name);
    check('CA', run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=test-ca']));
    check('CSR', run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost']));
    fs.writeFileSync(f('san.ext'), `subjectAltName=DNS:localhost,IP:127.0.0.1,IP:${this.o.podIp}\n`);
    check('server certificate', run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
      '-CAcreateserial', '-out', f('server.crt'), '-days', '1', '-extfile', f('san.ext')]));
    fs.chmodSync(f('server.key'), 0o600);
  }

  /** Rewrites pg_hba.conf with these user rules (takes effect on reload or restart). */
  public writeHba(userRules: string[]): void {
    fs.writeFileSync(path.join(this.data, 'pg_hba.conf'), cnpgHbaConf(userRules));
    fs.chmodSync(path.join(this.data, 'pg_hba.conf'), 0o644);
  }

  public start(): void {
    check('pg_ctl start', run(`${PG_BIN}/pg_ctl`, ['-D', this.data, '-l', this.logFile, '-w', '-t', '60', 'start'], { asPostgres: true, netns: this.netns }));
  }

  public restart(): void {
    check('pg_ctl restart', run(`${PG_BIN}/pg_ctl`, ['-D', this.data, '-l', this.logFile, '-w', '-t', '60', '-m', 'fast', 'restart'], { asPostgres: true, netns: this.netns }));
  }

  /** Stops the server cleanly (a shutdown checkpoint): the data directory can then be copied or run elsewhere. */
  public stop(): void {
    check('pg_ctl stop', run(`${PG_BIN}/pg_ctl`, ['-D', this.data, '-w', '-t', '60', '-m', 'fast', 'stop'], { asPostgres: true, netns: this.netns }));
  }

  /**
   * A standby's data directory next to the stopped primary's, as CloudNativePG's `join` makes one
   * (a base backup, then `standby.signal` and its `primary_conninfo`): a copy of the cleanly
   * stopped data directory (what a base backup holds, without the primary's slots), recovering
   * from `primaryConninfo` through `slot`. Returns its path.
   */
  public standbyCopy(name: string, primaryConninfo: string, slot: string): string {
    const target = path.join(this.dir, name);
    check('copy the data directory', run('cp', ['-a', this.data, target]));
    for (const f of fs.readdirSync(path.join(target, 'pg_replslot'))) fs.rmSync(path.join(target, 'pg_replslot', f), { recursive: true });
    fs.appendFileSync(path.join(target, 'custom.conf'), `primary_conninfo = '${primaryConninfo.replace(/'/g, "''")}'\nprimary_slot_name = '${slot}'\n`);
    fs.writeFileSync(path.join(target, 'standby.signal'), '');
    check('chown', run('chown', ['-R', 'postgres:postgres', target]));
    return target;
  }

  /** Stops the server at once (safe to call when it is not running), removes its namespace and files. */
  public destroy(): void {
    if (fs.existsSync(path.join(this.data, 'postmaster.pid'))) {
      run(`${PG_BIN}/pg_ctl`, ['-D', this.data, '-w', '-t', '30', '-m', 'immediate', 'stop'], { asPostgres: true });
    }
    if (this.netnsCreated) run('ip', ['netns', 'del', this.netns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  public log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** SQL as the superuser over the socket (peer, `map=local`), as the instance manager connects. */
  public superuser(sql: string, dbname = 'postgres'): RunResult {
    return run(`${PG_BIN}/psql`, ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
      `host=${this.socketDir} port=${PORT} user=postgres dbname=${dbname}`, '-c', sql], { asPostgres: true });
  }

  /** Like superuser(), but throws on error and returns the output. */
  public sql(sql: string, dbname = 'postgres'): string {
    return check(`SQL ${sql.slice(0, 80)}`, this.superuser(sql, dbname));
  }

  /**
   * psql over TCP inside the pod's network namespace, as a client would connect: `conninfo`
   * names host, user, dbname and TLS. DocumentDB's bson prints as JSON in these sessions.
   */
  public client(conninfo: string, sql: string, password?: string): RunResult {
    const env: { [k: string]: string } = { PGOPTIONS: '-c documentdb_core.bsonUseEJson=true' };
    if (password !== undefined) env.PGPASSWORD = password;
    return run(`${PG_BIN}/psql`, ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', `port=${PORT} ${conninfo}`, '-c', sql],
      { env, netns: this.netns });
  }
}

/** A role or database name quoted as pgx's Identifier.Sanitize() does. */
const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;

/**
 * What CloudNativePG's `initdb` bootstrap runs once the server is up (`ConfigureNewInstance`):
 * the owner role (LOGIN only), postInitSQL in `postgres`, postInitTemplateSQL in `template1`,
 * the application database owned by the owner, then postInitApplicationSQL in it. Each
 * statement on its own, as the instance manager executes them; the first error stops it.
 */
export function runInitdbBootstrap(pg: CnpgInstance, initdb: any): void {
  const owner: string | undefined = initdb.owner;
  if (owner && pg.sql(`SELECT COUNT(*) > 0 FROM pg_catalog.pg_roles WHERE rolname = ${literal(owner)}`) === 'f') {
    pg.sql(`CREATE ROLE ${ident(owner)} LOGIN`);
  }
  for (const q of initdb.postInitSQL ?? []) pg.sql(q);
  for (const q of initdb.postInitTemplateSQL ?? []) pg.sql(q, 'template1');
  const database: string | undefined = initdb.database;
  if (!owner || !database) return;
  if (pg.sql(`SELECT COUNT(*) > 0 FROM pg_catalog.pg_database WHERE datname = ${literal(database)}`) === 'f') {
    pg.sql(`CREATE DATABASE ${ident(database)} OWNER ${ident(owner)}`);
    for (const q of initdb.postInitApplicationSQL ?? []) pg.sql(q, database);
  }
}

/**
 * What the instance manager does on the primary when it starts (`configureInstancePermissions`):
 * the streaming_replica role (created only if missing), its pg_rewind privileges, and the
 * metrics exporter role (a pg_monitor member without a password).
 */
export function runInstanceStartup(pg: CnpgInstance): void {
  if (pg.sql("SELECT COUNT(*) FROM pg_catalog.pg_roles WHERE rolname = 'streaming_replica'") === '0') {
    pg.sql('CREATE USER streaming_replica REPLICATION');
  }
  pg.sql('ALTER USER streaming_replica LOGIN REPLICATION');
  for (const fn of ['pg_ls_dir(text, boolean, boolean)', 'pg_stat_file(text, boolean)', 'pg_read_binary_file(text)',
    'pg_read_binary_file(text, bigint, bigint, boolean)']) {
    pg.sql(`GRANT EXECUTE ON function pg_catalog.${fn} TO streaming_replica`);
  }
  if (pg.sql("SELECT COUNT(*) FROM pg_catalog.pg_roles WHERE rolname = 'cnpg_metrics_exporter'") === '0') {
    pg.sql('CREATE ROLE cnpg_metrics_exporter WITH LOGIN PASSWORD NULL');
  }
  pg.sql('GRANT pg_monitor TO cnpg_metrics_exporter');
}

/**
 * The role reconciler applying `spec.managed.roles` (`roles.Update`, `UpdateMembership`): every
 * attribute as declared, the password from the role's Secret, and a plain GRANT for each
 * `inRoles` entry the role is not yet a member of.
 */
export function reconcileManagedRoles(pg: CnpgInstance, roles: any[], passwords: { [secret: string]: string }): void {
  for (const role of roles) {
    const flag = (on: boolean | undefined, name: string) => (on ? ` ${name}` : ` NO${name}`);
    const password = role.passwordSecret ? ` PASSWORD ${literal(passwords[role.passwordSecret.name])}` : ' PASSWORD NULL';
    pg.sql(`ALTER ROLE ${ident(role.name)}${flag(role.bypassrls, 'BYPASSRLS')}${flag(role.createdb, 'CREATEDB')}`
      + `${flag(role.createrole, 'CREATEROLE')}${flag(role.inherit ?? true, 'INHERIT')}${flag(role.login, 'LOGIN')}`
      + `${flag(role.replication, 'REPLICATION')}${flag(role.superuser, 'SUPERUSER')} CONNECTION LIMIT ${role.connectionLimit ?? -1}${password}`);
    for (const inRole of role.inRoles ?? []) {
      const member = pg.sql('SELECT COUNT(*) > 0 FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles r ON r.oid = a.roleid '
        + `JOIN pg_catalog.pg_roles m ON m.oid = a.member WHERE m.rolname = ${literal(role.name)} AND r.rolname = ${literal(inRole)}`);
      if (member !== 't') pg.sql(`GRANT ${ident(inRole)} TO ${ident(role.name)}`);
    }
  }
}
