import { insert, NAME, PgCluster, PRIMARY, replica, synthCluster } from './fixture';
import { Cluster } from './harness';
import { HOST_POSTGRES } from './roots';
import { expectCreateUserOfBothRoleSets, expectStreamingToBothStandbys } from './shared-scenarios';
import { imageUserlands } from './userlands';

/**
 * The synthesized cluster in the images' userlands (the suite's default, `PgCluster.boot`):
 * PostgreSQL 17.12 + DocumentDB 0.107 + pg_cron 1.6 from the postgres-17 root, the credentials
 * Job and the `state` sidecar under BusyBox (curl root), postgres_exporter 0.17.1 (exporter
 * root), FerretDB from a root holding only its binary; every container with the read-only root
 * filesystem, user and dropped capabilities the synth gives it, and no settings deviation.
 * One cluster for the file; the promotion runs last.
 */
const PROPS = { monitoring: {} };
const ALL = [PRIMARY, replica(0), replica(1)];
const FERRETDB_RW = `${NAME}-ferretdb-rw`;
let pg: PgCluster;

jest.setTimeout(120_000);

beforeAll(async () => {
  pg = await PgCluster.boot(PROPS);
  await pg.h.startDeployment(FERRETDB_RW, { timeoutMs: 120_000 });
}, 600_000);

afterAll(async () => {
  await pg?.destroy();
}, 60_000);

/** `argv` in a container; throws with its output unless it exits 0. */
async function run(pod: string, container: string, argv: string[]): Promise<string> {
  const r = await pg.h.exec(pod, container, argv);
  if (r.code !== 0) throw new Error(`${pod}/${container}: ${argv.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

test('an image missing from the userland table makes Cluster.create throw, naming the image', async () => {
  const objects = synthCluster({ ...PROPS, postgresImage: 'example.com/other/postgres:17' });
  await expect(Cluster.create(objects, { userlands: imageUserlands() })).rejects.toThrow(/images without a userland: example\.com\/other\/postgres:17/);
});

test('the credentials Job created the Secret under BusyBox, and the state sidecar runs BusyBox sh', async () => {
  const secret = pg.h.getSecret(pg.credentialsJob!.replace(/-bootstrap-[0-9a-f]+$/, '')) ?? {};
  expect(Object.keys(secret).length).toBeGreaterThan(0);
  for (const [key, value] of Object.entries(secret)) expect({ key, length: value.length >= 16 }).toEqual({ key, length: true });
  expect(await run(PRIMARY, 'state', ['sh', '-c', 'readlink -f /bin/sh; busybox | head -1'])).toMatch(/^\/bin\/busybox\nBusyBox v1\.37/);
  expect(pg.h.restarts(PRIMARY, 'state')).toBe(0);
});

test('PostgreSQL 17 runs DocumentDB 0.107 and pg_cron 1.6 at the default 2 s index-build schedule (no deviation)', async () => {
  expect(await pg.sql(PRIMARY, "SELECT current_setting('server_version_num')::int / 10000")).toBe('17');
  expect(await pg.sql(PRIMARY, "SELECT extversion FROM pg_extension WHERE extname = 'documentdb'")).toBe('0.107-0');
  expect(await pg.sql(PRIMARY, "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")).toMatch(/^1\.6/);
  expect(await pg.sql(PRIMARY, "SELECT current_setting('documentdb.indexBuildScheduleInSec')")).toBe('2');
  expect(await pg.sql(PRIMARY, "SELECT schedule FROM cron.job WHERE command LIKE '%build_index%' OR jobname LIKE '%index%' LIMIT 1")).toBe('2 seconds');
});

test('the primary streams to both standbys through their slots, and rows written on it reach them', async () => {
  await expectStreamingToBothStandbys(pg);
});

test('documentdb_api.create_user as the ferretdb role grants both role sets on PostgreSQL 17 (the ADMIN OPTION grants)', async () => {
  await expectCreateUserOfBothRoleSets(pg);
  expect(await pg.sql(PRIMARY, `SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_auth_members a
    JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = 'ferretdb' AND a.admin_option`))
    .toMatch(/documentdb_admin_role.*documentdb_readonly_role/);
});

test('postgres_exporter 0.17.1 is scraped from the pod and reports the server up', async () => {
  const metrics = await pg.h.waitUntil('a scrape of the primary\'s exporter with pg_up 1', 60_000, async () => {
    const r = await pg.h.exec(PRIMARY, 'state', ['curl', '-sS', '--fail', '--max-time', '10', 'http://127.0.0.1:9187/metrics'], { timeoutMs: 15_000 });
    return r.code === 0 && /^pg_up 1$/m.test(r.stdout) ? r.stdout : undefined;
  });
  expect(metrics).toMatch(/^postgres_exporter_build_info\{[^}]*version="0\.17\.1"/m);
});

test('FerretDB 2.7 runs from a root holding only its binary and is Ready against PostgreSQL 17', async () => {
  const pods = pg.h.pods().filter((p) => p.owner === `Deployment/${FERRETDB_RW}` && p.ready);
  expect(pods.length).toBeGreaterThan(0);
  const version = await pg.h.exec(pods[0].name, 'ferretdb', ['/ferretdb', '--version']);
  expect(version.stdout + version.stderr).toMatch(/2\.7\.0/);
  const shell = await pg.h.exec(pods[0].name, 'ferretdb', ['/bin/sh', '-c', 'true']);
  expect(shell.code).not.toBe(0);
});

test('containers run as the images\' users: PostgreSQL as the root\'s postgres user (the image\'s 999), the FerretDB pod as 1000', async () => {
  expect(await run(PRIMARY, 'postgres', ['sh', '-c', 'id -un; id -u; id -g'])).toBe(`postgres\n${HOST_POSTGRES.uid}\n${HOST_POSTGRES.gid}\n`);
  const ferret = pg.h.pods().find((p) => p.owner === `Deployment/${FERRETDB_RW}` && p.ready)!;
  expect(await run(ferret.name, 'certificate-watch', ['sh', '-c', 'id -u; id -g; id -G'])).toBe('1000\n1000\n1000\n');
});

test('no container with a shell can write to its root filesystem (readOnlyRootFilesystem): touch /x fails with EROFS', async () => {
  const checked: string[] = [];
  for (const pod of pg.h.pods().filter((p) => !p.terminating && p.phase === 'Running')) {
    for (const container of Object.keys(pod.restarts)) {
      if (container === 'ferretdb') continue; // FROM scratch: no touch to run (see the test above)
      const r = await pg.h.exec(pod.name, container, ['sh', '-c', 'touch /x 2>&1; echo "exit $?"']);
      expect({ pod: pod.name, container, out: r.stdout }).toEqual({ pod: pod.name, container, out: expect.stringMatching(/Read-only file system\nexit 1\n$/) });
      checked.push(`${pod.name}/${container}`);
    }
  }
  expect(checked).toEqual(expect.arrayContaining(ALL.flatMap((p) => [`${p}/postgres`, `${p}/agent`, `${p}/metrics`]).concat(`${PRIMARY}/state`)));
});

test('a promotion through currentPrimary: the chosen standby becomes the only writable primary and the old primary follows it', async () => {
  await pg.h.apply(synthCluster({ ...PROPS, currentPrimary: replica(0) }), { wait: false });
  await pg.h.waitUntil(`${replica(0)} is the only writable primary`, 180_000, async () =>
    (await pg.writablePrimaries(ALL)).join() === replica(0));
  await pg.h.waitReady(PRIMARY, 240_000);
  await pg.waitStreaming(replica(0), [replica(1), PRIMARY], 180_000);
  await pg.sql(replica(0), insert(101, 110));
  await pg.waitCount(PRIMARY, 't', 110);
  expect(await pg.writablePrimaries(ALL)).toEqual([replica(0)]);
}, 600_000);
