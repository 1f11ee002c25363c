/**
 * PostgreSQL TLS (postgresTls) on real PostgreSQL 17 pods: certificates made here with openssl
 * (a throwaway CA and server certificates for the names the construct lists) are served as the
 * Secret the pods mount, exactly as synthesized.
 */
import { Testing } from 'cdk8s';
import { NAME, PgCluster, PRIMARY, replica, RW_SERVICE, synthCluster } from './fixture';
import { TestCa } from './test-ca';
import { FerretDBCluster, FerretDBClusterProps, PostgresTls } from '../../src';
import { parsePostgresUrl } from '../util';

jest.setTimeout(240_000);

const SECRET = 'fdb-pg-tls';
const STANDBY = replica(0);
const TLS_DIR = '/etc/ferretdb-postgres-tls';
const PROPS: FerretDBClusterProps = { replicas: 1, postgresTls: PostgresTls.fromSecret(SECRET) };

/** The names the construct says the certificate must carry (PostgresPrimary.tlsDnsNames). */
function dnsNames(): string[] {
  const cluster = new FerretDBCluster(Testing.chart(), 'db', { name: NAME, ...PROPS });
  return cluster.primary.tlsDnsNames;
}

/** FERRETDB_POSTGRESQL_URL of both FerretDB Deployments (writer and reader), as synthesized. */
function ferretdbUrls(): string[] {
  return (synthCluster(PROPS) as any[]).filter((o) => o.kind === 'Deployment')
    .map((d) => d.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value);
}

let pg: PgCluster | undefined;
let ca: TestCa | undefined;

afterEach(async () => {
  await pg?.destroy();
  pg = undefined;
  ca?.destroy();
  ca = undefined;
});

/** psql from a pod with a libpq connection string; the replication role's password file. */
async function connect(pod: string, conninfo: string, query = 'SELECT 1') {
  return pg!.h.exec(pod, 'postgres', ['psql', '-X', '-A', '-t', '-q', '-d',
    `${conninfo} user=replicator dbname=postgres passfile=/tmp/.pgpass connect_timeout=5`, '-c', query], { timeoutMs: 15_000 });
}

/** The serial of the certificate the server at `ip` presents now (a new TLS handshake). */
async function servedSerial(pod: string, ip: string): Promise<string> {
  const r = await pg!.h.exec(pod, 'postgres', ['bash', '-c',
    `openssl s_client -starttls postgres -connect ${ip}:5432 </dev/null 2>/dev/null | openssl x509 -noout -serial`], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`openssl s_client to ${ip} failed: ${r.stderr}`);
  return r.stdout.trim().replace(/^serial=/, '');
}

test('replication, member checks and FerretDB\'s role run over verified TLS only; a renewed certificate is served without a restart', async () => {
  ca = new TestCa();
  const first = ca.issue(dnsNames());
  pg = await PgCluster.create(PROPS);
  // The Secret exists before the pods (a missing Secret keeps them in ContainerCreating).
  pg.h.setSecret(SECRET, first.secret);
  await pg.runCredentialsJob();
  await pg.h.startStatefulSet(`${NAME}-pg-primary`, { timeoutMs: 120_000 });
  await pg.h.startStatefulSet(`${NAME}-pg-replica`, { timeoutMs: 120_000 });
  const c = pg;
  await c.waitStreaming(PRIMARY, [STANDBY]);

  // The key file is the Secret volume's root:fsGroup 0440 file, which PostgreSQL accepted.
  expect(await c.sql(PRIMARY, 'SHOW ssl')).toBe('on');
  const key = await c.h.exec(PRIMARY, 'postgres', ['stat', '-L', '-c', '%U %a', `${TLS_DIR}/tls.key`]);
  expect(key.stdout.trim()).toBe('root 440');

  // The standby's walsender on the primary is encrypted, and the standby asked for verify-full.
  expect(await c.sql(PRIMARY, `SELECT r.application_name || ' ' || s.ssl || ' ' || s.version
    FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)`)).toMatch(new RegExp(`^${STANDBY} true TLSv1\\.[23]$`));
  expect(await c.sql(STANDBY, 'SELECT conninfo FROM pg_stat_wal_receiver')).toMatch(/sslmode=verify-full .*sslrootcert=/);
  expect(await c.sql(STANDBY, 'SHOW primary_conninfo')).toContain(`sslmode=verify-full sslrootcert=${TLS_DIR}/ca.crt`);

  // Plain text is refused by pg_hba (hostnossl ... reject) for normal and replication connections;
  // the same role over TLS gets in (so the refusal is the missing encryption, not the password).
  const plain = await connect(STANDBY, `host=${RW_SERVICE} sslmode=disable`);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toMatch(/pg_hba\.conf rejects connection .*no encryption|no pg_hba\.conf entry .*no encryption/);
  const plainReplication = await c.h.exec(STANDBY, 'postgres', ['psql', '-X', '-d',
    `host=${RW_SERVICE} sslmode=disable user=replicator replication=true passfile=/tmp/.pgpass connect_timeout=5`, '-c', 'IDENTIFY_SYSTEM']);
  expect(plainReplication.code).not.toBe(0);
  expect(plainReplication.stderr).toMatch(/replication connection .*no encryption/);
  const verified = await connect(STANDBY, `host=${RW_SERVICE} sslmode=verify-full sslrootcert=${TLS_DIR}/ca.crt`,
    'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  expect({ code: verified.code, stderr: verified.stderr, out: verified.stdout.trim() }).toEqual({ code: 0, stderr: '', out: 't' });

  // verify-full refuses a name the certificate does not carry: the same server by its pod IP.
  const byIp = await connect(STANDBY, `host=${c.h.podIP(PRIMARY)} sslmode=verify-full sslrootcert=${TLS_DIR}/ca.crt`);
  expect(byIp.code).not.toBe(0);
  expect(byIp.stderr).toMatch(/server certificate for "[^"]+" (\(and \d+ other names?\) )?does not match host name "10\.231\./);

  // The member check of a standby about to promote (lib.sh other_writable_members) reaches
  // <pod>.<statefulset> with verify-full.
  const members = await c.h.exec(STANDBY, 'postgres', ['bash', '-c', '. "$CONFIG_DIR/lib.sh"; psql -X -A -t -q -d "$(conninfo "$(member_host "$1")")" -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"', 'lib', PRIMARY]);
  expect({ code: members.code, stderr: members.stderr, out: members.stdout.trim() }).toEqual({ code: 0, stderr: '', out: 't' });

  // FerretDB's URLs as synthesized, with its role and password: the primary through the
  // read-write Service, the standby through the read-only one. psql takes only libpq's
  // parameters (not pgx's pool and run-time ones) and finds ca.crt of the same Secret at TLS_DIR.
  // (The readers' URL lists the primary's Service after the standbys': its certificate names both.)
  const urls = ferretdbUrls();
  expect(urls.map((u) => parsePostgresUrl(u).hosts).sort()).toEqual([[`${NAME}-pg-ro`, RW_SERVICE], [RW_SERVICE]]);
  for (const u of urls) {
    const url = parsePostgresUrl(u).url;
    expect(url.searchParams.get('sslmode')).toBe('verify-full');
    for (const name of [...url.searchParams.keys()].filter((n) => n.startsWith('pool_') || n === 'default_transaction_read_only')) url.searchParams.delete(name);
    url.searchParams.set('sslrootcert', `${TLS_DIR}/ca.crt`);
    const r = await c.h.exec(STANDBY, 'postgres', ['bash', '-c',
      'PGPASSWORD=$(cat "$SECRET_DIR/ferretdb-password") psql -X -A -t -q -d "$1" -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"',
      'ferretdb', url.toString()]);
    expect({ u, code: r.code, stderr: r.stderr, out: r.stdout.trim() }).toEqual({ u, code: 0, stderr: '', out: 't' });
  }

  // Rotation: a new certificate (another serial) in the Secret. The agent notices, reloads, and
  // new connections get the new certificate; the server is never restarted.
  const started = await c.sql(PRIMARY, 'SELECT pg_postmaster_start_time()');
  const primaryIp = c.h.podIP(PRIMARY);
  expect(await servedSerial(STANDBY, primaryIp)).toBe(first.serial);
  const second = ca.issue(dnsNames());
  expect(second.serial).not.toBe(first.serial);
  // Each agent's first pass reloads unconditionally (and says nothing): rotate after it.
  for (const pod of [PRIMARY, STANDBY]) await c.waitLog(pod, /received SIGHUP, reloading configuration files/, 0, 30_000);
  const marks = [PRIMARY, STANDBY].map((pod) => c.logMark(pod, 'agent'));
  c.h.setSecret(SECRET, second.secret);
  await c.waitLog(PRIMARY, /TLS certificate changed: reloaded/, marks[0], 30_000, 'agent');
  await c.waitLog(STANDBY, /TLS certificate changed: reloaded/, marks[1], 30_000, 'agent');
  await c.h.waitUntil('the primary serves the renewed certificate', 15_000, async () => await servedSerial(STANDBY, primaryIp) === second.serial);
  expect(await servedSerial(PRIMARY, c.h.podIP(STANDBY))).toBe(second.serial);
  expect(await c.sql(PRIMARY, 'SELECT pg_postmaster_start_time()')).toBe(started);
  for (const pod of [PRIMARY, STANDBY]) {
    expect({ pod, restarts: c.h.restarts(pod, 'postgres') }).toEqual({ pod, restarts: 0 });
  }
  // Replication carries on, and a new verify-full connection succeeds with the renewed certificate.
  await c.sql(PRIMARY, 'CREATE TABLE after_rotation AS SELECT 1 AS x');
  await c.waitCount(STANDBY, 'after_rotation', 1, 30_000);
  const again = await connect(STANDBY, `host=${RW_SERVICE} sslmode=verify-full sslrootcert=${TLS_DIR}/ca.crt`);
  expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
});

test('a standby cannot clone from a primary whose certificate lacks the read-write Service\'s name', async () => {
  ca = new TestCa();
  // Every name but the read-write Service, which standbys clone and stream through.
  const missing = ca.issue(dnsNames().filter((n) => n !== RW_SERVICE));
  pg = await PgCluster.create(PROPS);
  pg.h.setSecret(SECRET, missing.secret);
  await pg.runCredentialsJob();
  await pg.h.startStatefulSet(`${NAME}-pg-primary`, { timeoutMs: 120_000 });
  const c = pg;
  // It never becomes ready: startStatefulSet gives up after 15 s.
  const starting = c.h.startStatefulSet(`${NAME}-pg-replica`, { timeoutMs: 15_000 });
  await c.waitLog(STANDBY, /server certificate for "[^"]+" (\(and \d+ other names?\) )?does not match host name "fdb-pg-rw"/, 0, 15_000);
  expect(c.h.isReady(STANDBY)).toBe(false);
  await expect(starting).rejects.toThrow(/fdb-pg-replica/);
  expect(c.h.logs(STANDBY, 'postgres')).not.toContain('cloning');
  expect(await c.sql(PRIMARY, 'SELECT count(*) FROM pg_stat_replication')).toBe('0');
});
