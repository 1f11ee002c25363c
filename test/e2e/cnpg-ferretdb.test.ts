/**
 * The CloudNativePG backend's FerretDB Deployments, as synthesized, running the real FerretDB
 * against a CloudNativePG-like primary and standby (./cnpg-instance.ts: configured and
 * bootstrapped from the synthesized Cluster as the operator would), with the real MongoDB driver
 * through the synthesized Services. No operator runs: the test makes what it would make, as
 * CloudNativePG 1.30 makes it: the Secrets `<cluster>-ca` (`ca.crt`, `ca.key`), `<cluster>-server`
 * (`tls.crt`, `tls.key`; CN `<cluster>-rw`, the DNS names of `-rw`, `-r` and `-ro` in four forms)
 * and `<cluster>-replication` (CN `streaming_replica`), the Services `-rw` (the primary), `-ro`
 * (the standbys) and `-r` (any instance), and instance pods that copy the certificates to
 * `/controller/certificates` and run PostgreSQL with them. The application Secret is the
 * Cluster's `bootstrap.initdb.secret` (the library's `fdb-credentials`), so no `<cluster>-app`
 * exists. Differences: instance pods are named `fdb-pg-0` and `fdb-pg-standby-N` (CloudNativePG:
 * `fdb-pg-1`, `-2`, ...), the standby's data directory is a copy of the stopped primary's
 * (CloudNativePG: pg_basebackup), and readiness is a psql check in the pod (CloudNativePG: its
 * instance manager's, `streaming` for standbys).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { CnpgInstance, reconcileManagedRoles, runInitdbBootstrap, runInstanceStartup } from './cnpg-instance';
import { DOCUMENTDB_TEST_PARAMETERS, ensureDocumentDb, PG_BIN } from './documentdb';
import { ferretDbImages } from './ferretdb';
import { Cluster } from './harness';
import { clientStatefulSet, logFerretDBWarnings } from './mongo-fixture';
import { FerretDBCluster, PostgresBackend } from '../../src';

jest.setTimeout(300_000);

const NAME = 'fdb';
const CLUSTER = `${NAME}-pg`;
const WRITERS = `${NAME}-ferretdb-rw`;
const READERS = `${NAME}-ferretdb-ro`;
const RW = `${NAME}-rw`;
const RO = `${NAME}-ro`;
const PRIMARY_STS = CLUSTER;
const STANDBY_STS = `${CLUSTER}-standby`;
const PRIMARY = `${PRIMARY_STS}-0`;
const STANDBY = `${STANDBY_STS}-0`;
const CLIENT = 'mongo-client-0';
const CLIENT_SCRIPT = path.join(__dirname, 'ferretdb', 'mongo-client.js');
/** CloudNativePG's certificate directory in an instance pod, and its file names. */
const CERTS = '/controller/certificates';

const chart = Testing.chart();
new FerretDBCluster(chart, 'db', { name: NAME, backend: PostgresBackend.cloudNativePG() });
const synthesized: any[] = Testing.synth(chart);
const spec = synthesized.find((o) => o.kind === 'Cluster').spec;

/** openssl in `dir`; throws with its stderr. */
function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and certificate signed by the CA in `dir`, as `<name>.key` / `<name>.crt`. */
function issue(dir: string, name: string, cn: string, extensions: string): { crt: string; key: string } {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${extensions}\n`);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
  return { crt: fs.readFileSync(path.join(dir, `${name}.crt`), 'utf8'), key: fs.readFileSync(path.join(dir, `${name}.key`), 'utf8') };
}

/** CloudNativePG's server certificate names (`GetClusterAltDNSNames`): -rw, -r, -ro, each in four forms. */
function cnpgServerNames(namespace: string): string[] {
  return ['rw', 'r', 'ro'].flatMap((s) => {
    const svc = `${CLUSTER}-${s}`;
    return [svc, `${svc}.${namespace}`, `${svc}.${namespace}.svc`, `${svc}.${namespace}.svc.cluster.local`];
  });
}

/** The certificates CloudNativePG's operator creates by default: one CA for servers and clients. */
function cnpgCertificates(dir: string, namespace: string) {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', `/OU=default/CN=${CLUSTER}`]);
  const ca = { 'ca.crt': fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8'), 'ca.key': fs.readFileSync(path.join(dir, 'ca.key'), 'utf8') };
  const server = issue(dir, 'server', `${CLUSTER}-rw`, 'keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
    + `subjectAltName=${cnpgServerNames(namespace).map((n) => `DNS:${n}`).join(',')}`);
  const replication = issue(dir, 'replication', 'streaming_replica', 'keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth');
  // The positive control's certificate: same CA, but only an instance's own name.
  const wrongName = issue(dir, 'wrong-name', `${CLUSTER}-1`, `keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${CLUSTER}-1`);
  const tls = (c: { crt: string; key: string }) => ({ 'tls.crt': c.crt, 'tls.key': c.key });
  return { ca, server: tls(server), replication: tls(replication), wrongName: tls(wrongName) };
}

/**
 * What CloudNativePG's instance manager does with the Secrets: copies them to
 * /controller/certificates (0600, the postgres user's); the same script refreshes them later.
 */
const INSTALL_CERTIFICATES = `umask 077; mkdir -p ${CERTS}
cp /secrets/server/tls.crt ${CERTS}/server.crt; cp /secrets/server/tls.key ${CERTS}/server.key
cp /secrets/replication/tls.crt ${CERTS}/streaming_replica.crt; cp /secrets/replication/tls.key ${CERTS}/streaming_replica.key
cp /secrets/ca/ca.crt ${CERTS}/client-ca.crt; cp /secrets/ca/ca.crt ${CERTS}/server-ca.crt`;

/** psql as postgres over the pod's socket (CloudNativePG's `local all all peer map=local`). */
const PSQL = 'psql -X -A -t -q -h /var/run/postgresql -d postgres';

/** An instance StatefulSet: PostgreSQL on a prepared data directory with CloudNativePG's certificate layout. */
function instanceStatefulSet(name: string, role: 'primary' | 'replica', replicas: number, dataDir: string): unknown {
  const ready = role === 'primary'
    ? `[ "$(${PSQL} -c 'SELECT pg_is_in_recovery()')" = f ]`
    : `[ "$(${PSQL} -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")" = 1 ]`;
  const secret = (v: string, secretName: string) => ({ name: v, secret: { secretName } });
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name },
    spec: {
      replicas,
      serviceName: `${CLUSTER}-any`,
      selector: { matchLabels: { 'cnpg.io/cluster': CLUSTER, 'cnpg.io/instanceRole': role } },
      template: {
        metadata: { labels: { 'cnpg.io/cluster': CLUSTER, 'cnpg.io/instanceRole': role, 'cnpg.io/podRole': 'instance' } },
        spec: {
          terminationGracePeriodSeconds: 5,
          securityContext: { runAsUser: spec.postgresUID, runAsGroup: spec.postgresGID, runAsNonRoot: true },
          containers: [{
            name: 'postgres',
            image: 'cnpg-instance',
            // DATA: the primary's directory, or standby-<ordinal> next to it.
            command: ['sh', '-c', `${INSTALL_CERTIFICATES}
              DATA=${dataDir}; [ ${role} = primary ] || DATA=${dataDir}-$(hostname | sed 's/.*-//')
              exec postgres -D "$DATA" -c unix_socket_directories=/var/run/postgresql -c hba_file="$DATA/pg_hba.conf" \\
                -c ident_file="$DATA/pg_ident.conf" -c ssl_cert_file=${CERTS}/server.crt -c ssl_key_file=${CERTS}/server.key \\
                -c ssl_ca_file=${CERTS}/client-ca.crt`],
            ports: [{ name: 'postgresql', containerPort: 5432 }],
            readinessProbe: { exec: { command: ['sh', '-c', ready] }, periodSeconds: 1, timeoutSeconds: 10, failureThreshold: 3 },
            volumeMounts: [
              { name: 'controller', mountPath: '/controller' },
              { name: 'server', mountPath: '/secrets/server', readOnly: true },
              { name: 'replication', mountPath: '/secrets/replication', readOnly: true },
              { name: 'ca', mountPath: '/secrets/ca', readOnly: true },
            ],
          }],
          volumes: [{ name: 'controller', emptyDir: {} }, secret('server', `${CLUSTER}-server`),
            secret('replication', `${CLUSTER}-replication`), secret('ca', `${CLUSTER}-ca`)],
        },
      },
    },
  };
}

/** CloudNativePG's Services: -rw the primary, -ro the standbys, -r every instance. */
function cnpgService(suffix: string, selector: Record<string, string>): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `${CLUSTER}-${suffix}` },
    spec: { ports: [{ name: 'postgres', port: 5432, targetPort: 5432 }], selector: { 'cnpg.io/cluster': CLUSTER, ...selector } },
  };
}


let h: Cluster;
let pg: CnpgInstance | undefined;
let certDir: string;
let certs: ReturnType<typeof cnpgCertificates>;
let password: string;

interface MongoResult { ok: boolean; value?: any; error?: { name: string; code?: number; codeName?: string; message: string } }

/** `body` (an async function body of client, db) with the driver in the client pod. */
async function mongo(service: string, body: string): Promise<MongoResult> {
  const query = service === RO ? '?readPreference=secondaryPreferred' : '';
  const uri = `mongodb://ferretdb:${encodeURIComponent(password)}@${service}:27017/${query}`;
  const r = await h.exec(CLIENT, 'app', ['node', CLIENT_SCRIPT], { input: JSON.stringify({ uri, db: 'shop', body }), timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`mongo-client.js failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr}`);
  return JSON.parse(r.stdout) as MongoResult;
}

async function sql(pod: string, query: string): Promise<string> {
  const r = await h.exec(pod, 'postgres', ['sh', '-c', `${PSQL} -v ON_ERROR_STOP=1`], { input: query, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`psql on ${pod} failed: ${r.stderr}\nquery: ${query}`);
  return r.stdout.trim();
}

const ferretPods = (deployment: string) =>
  h.pods().filter((p) => p.owner === `Deployment/${deployment}` && !p.terminating).map((p) => p.name).sort();

/** FerretDB's sessions on an instance: how many, and how many without TLS. */
const FERRETDB_SESSIONS = "SELECT count(*) || ' ' || count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'ferretdb'";

beforeAll(async () => {
  ensureDocumentDb();
  // The instance's data directory (initdb as CloudNativePG runs it; bootstrapped below).
  pg = CnpgInstance.create({
    parameters: { ...spec.postgresql.parameters, ...DOCUMENTDB_TEST_PARAMETERS },
    sharedPreloadLibraries: spec.postgresql.shared_preload_libraries,
    pgHba: spec.postgresql.pg_hba,
    podIp: '192.0.2.10',
  });
  const client = { 'mongo-client': { path: [path.dirname(process.execPath)], env: {} } };
  const instance = { 'cnpg-instance': { path: [PG_BIN], env: {} } };
  h = await Cluster.create([...synthesized, clientStatefulSet,
    instanceStatefulSet(PRIMARY_STS, 'primary', 1, pg.data), instanceStatefulSet(STANDBY_STS, 'replica', 1, pg.data),
    cnpgService('rw', { 'cnpg.io/instanceRole': 'primary' }), cnpgService('ro', { 'cnpg.io/instanceRole': 'replica' }),
    cnpgService('r', { 'cnpg.io/podRole': 'instance' })], { images: { ...ferretDbImages(), ...client, ...instance } });
  // The library's credentials Job makes the Secret the Cluster bootstraps from (initdb.secret).
  const job = synthesized.find((o) => o.kind === 'Job');
  const result = await h.runJob(job.metadata.name, { timeoutMs: 60_000 });
  if (!result.succeeded) throw new Error(`credentials Job failed:\n${result.logs}`);
  password = h.getSecret(spec.bootstrap.initdb.secret.name)!.password;

  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnpg-certs-'));
  certs = cnpgCertificates(certDir, h.namespace);
  h.setSecret(`${CLUSTER}-ca`, certs.ca);
  h.setSecret(`${CLUSTER}-server`, certs.server);
  h.setSecret(`${CLUSTER}-replication`, certs.replication);

  // The operator's initdb bootstrap, its first start as primary and its standby's slot, then a
  // clean stop: the instance pods run this data directory and a copy of it.
  pg.start();
  runInitdbBootstrap(pg, spec.bootstrap.initdb);
  runInstanceStartup(pg);
  reconcileManagedRoles(pg, spec.managed.roles, { [spec.bootstrap.initdb.secret.name]: password });
  const slot = `_cnpg_${STANDBY.replace(/[^a-z0-9_]/g, '_')}`;
  pg.sql(`SELECT pg_create_physical_replication_slot('${slot}')`);
  pg.stop();
  pg.standbyCopy('data-0', `host=${CLUSTER}-rw user=streaming_replica port=5432 sslkey=${CERTS}/streaming_replica.key `
    + `sslcert=${CERTS}/streaming_replica.crt sslrootcert=${CERTS}/server-ca.crt application_name=${STANDBY} sslmode=verify-ca dbname=postgres`, slot);

  await h.startStatefulSet(PRIMARY_STS, { timeoutMs: 120_000 });
  await h.startStatefulSet(STANDBY_STS, { timeoutMs: 120_000 });
  await h.startStatefulSet('mongo-client');
  await h.startDeployment(WRITERS, { timeoutMs: 180_000 });
  await h.startDeployment(READERS, { timeoutMs: 180_000 });
}, 900_000);

afterAll(async () => {
  // What the FerretDB pods said, for a failed run.
  if (h) logFerretDBWarnings(h, [...ferretPods(WRITERS), ...ferretPods(READERS)]);
  await h?.destroy();
  pg?.destroy();
  if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
});

test('CloudNativePG: a MongoDB insert and find through NAME-rw reach the primary as the managed role, every FerretDB session over TLS', async () => {
  const written = await mongo(RW, `
    await db.collection('orders').insertMany([{ sku: 'a', qty: 5 }, { sku: 'b', qty: 1 }]);
    return db.collection('orders').find({ qty: { $gt: 2 } }, { projection: { _id: 0 } }).toArray();`);
  expect(written).toEqual({ ok: true, value: [{ sku: 'a', qty: 5 }] });
  // The documents are in the primary's DocumentDB, written by FerretDB's role over TLS.
  expect(await sql(PRIMARY, "SELECT count(*) FROM documentdb_api.collection('shop', 'orders')")).toBe('2');
  const [sessions, plain] = (await sql(PRIMARY, FERRETDB_SESSIONS)).split(' ').map(Number);
  expect(sessions).toBeGreaterThan(0);
  expect(plain).toBe(0);
});

test('CloudNativePG: the reader FerretDB serves finds through NAME-ro from a streaming standby, over TLS; a write there fails with InternalError', async () => {
  expect(await sql(STANDBY, 'SELECT pg_is_in_recovery()')).toBe('t');
  const read = await h.waitUntil(`${RO} sees the documents written through ${RW}`, 60_000, async () => {
    const r = await mongo(RO, "return db.collection('orders').find({}, { projection: { _id: 0 } }).sort({ sku: 1 }).toArray();");
    return r.ok && r.value.length === 2 ? r.value : undefined;
  });
  expect(read).toEqual([{ sku: 'a', qty: 5 }, { sku: 'b', qty: 1 }]);
  const [sessions, plain] = (await sql(STANDBY, FERRETDB_SESSIONS)).split(' ').map(Number);
  expect(sessions).toBeGreaterThan(0);
  expect(plain).toBe(0);
  const write = await mongo(RO, "return db.collection('orders').insertOne({ sku: 'z' });");
  expect(write).toMatchObject({ ok: false, error: { code: 1, codeName: 'InternalError' } });
});

test('CloudNativePG: FerretDB verifies the server\'s host name (verify-full): with a certificate valid only for another name new FerretDB pods stay not Ready; CloudNativePG\'s certificate makes them Ready', async () => {
  /** The operator's certificate refresh: new files from the Secret, then a reload. */
  const serve = async (tls: Record<string, string>) => {
    h.setSecret(`${CLUSTER}-server`, tls);
    for (const pod of [PRIMARY, STANDBY]) {
      await h.waitUntil(`${pod} mounts the new server certificate`, 30_000, async () =>
        (await h.exec(pod, 'postgres', ['cat', '/secrets/server/tls.crt'])).stdout === tls['tls.crt']);
      const r = await h.exec(pod, 'postgres', ['sh', '-c', `${INSTALL_CERTIFICATES}; ${PSQL} -c 'SELECT pg_reload_conf()'`]);
      expect({ pod, code: r.code, stderr: r.stderr }).toEqual({ pod, code: 0, stderr: '' });
    }
  };
  await serve(certs.wrongName);
  const oldWriters = ferretPods(WRITERS);
  const oldReaders = ferretPods(READERS);
  // One pod of each Deployment replaced: the new ones connect with the new certificate.
  await h.deletePod(oldWriters[0]);
  await h.deletePod(oldReaders[0]);
  const fresh = await h.waitUntil('replacement FerretDB pods', 60_000, () => {
    const w = ferretPods(WRITERS).filter((p) => !oldWriters.includes(p));
    const r = ferretPods(READERS).filter((p) => !oldReaders.includes(p));
    return w.length === 1 && r.length === 1 ? [...w, ...r] : undefined;
  });
  // Readers try -ro, then -rw (their fallback): either host's name is refused.
  for (const [pod, hosts] of [[fresh[0], `${CLUSTER}-rw`], [fresh[1], `${CLUSTER}-ro|${CLUSTER}-rw`]]) {
    const refused = new RegExp(`x509: certificate is valid for ${CLUSTER}-1, not (${hosts})`);
    await h.waitUntil(`${pod} logs the host-name mismatch`, 120_000, () => refused.test(h.logs(pod, 'ferretdb')));
    expect({ pod, ready: h.isReady(pod) }).toEqual({ pod, ready: false });
  }
  expect(h.endpoints(RW)).not.toContain(fresh[0]);
  expect(h.endpoints(RO)).not.toContain(fresh[1]);

  await serve(certs.server);
  for (const pod of fresh) await h.waitReady(pod, 120_000);
  expect((await mongo(RW, "return db.collection('orders').countDocuments({});")).value).toBe(2);
});
