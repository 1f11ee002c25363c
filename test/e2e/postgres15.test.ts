import { insert, PgCluster, PRIMARY, replica } from './fixture';
import { expectCreateUserOfBothRoleSets, expectStreamingToBothStandbys } from './shared-scenarios';

/**
 * The smaller set for users of the PostgreSQL 15 images (`postgresImage` ...:15-...): the suite's
 * scenarios run PostgreSQL 17 in the images' userlands; these run Debian 12's PostgreSQL 15 with
 * DocumentDB 0.107 built for it (`PgCluster.boot(props, { postgres: 15 })`, the host's tools and
 * PG15_DEVIATION). Bootstrap, streaming replication, createUser for both role sets, what
 * CREATEROLE lets ferretdb do on 15, and a promotion, on one cluster; the promotion runs last.
 */
const ALL = [PRIMARY, replica(0), replica(1)];
let pg: PgCluster;

jest.setTimeout(120_000);

beforeAll(async () => {
  pg = await PgCluster.boot({}, { postgres: 15 });
}, 600_000);

afterAll(async () => {
  await pg?.destroy();
}, 60_000);

test('the credentials Job and both StatefulSets bootstrap PostgreSQL 15 with DocumentDB 0.107', async () => {
  expect(await pg.sql(PRIMARY, "SELECT current_setting('server_version_num')::int / 10000")).toBe('15');
  expect(await pg.sql(PRIMARY, "SELECT extversion FROM pg_extension WHERE extname = 'documentdb'")).toBe('0.107-0');
  expect(await pg.inRecovery(PRIMARY)).toBe(false);
  const secret = pg.h.getSecret(pg.credentialsJob!.replace(/-bootstrap-[0-9a-f]+$/, '')) ?? {};
  expect(Object.keys(secret)).toEqual(expect.arrayContaining(['ferretdb-password']));
});

test('the primary streams to both standbys through their slots, and rows written on it reach them', async () => {
  await expectStreamingToBothStandbys(pg);
});

test('documentdb_api.create_user as the ferretdb role grants both role sets on PostgreSQL 15', async () => {
  await expectCreateUserOfBothRoleSets(pg);
});

test('a known limit of PostgreSQL 15 (README, Security): ferretdb (CREATEROLE) grants itself pg_execute_server_program and runs a program as the server\'s user', async () => {
  // PostgreSQL 15 lets a CREATEROLE role grant any non-superuser role, predefined ones included;
  // 16 asks for ADMIN OPTION on it (the metrics e2e asserts the refusal on 17). No event trigger
  // sees a GRANT of a role, so nothing in the setup can stop it on 15.
  const asFerretdb = (sql: string) => pg.h.exec(PRIMARY, 'postgres', ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'ferretdb', '-d', 'postgres', '-c', sql]);
  expect(await pg.sql(PRIMARY, "SELECT rolcreaterole::text || ',' || rolsuper::text || ',' || pg_has_role('ferretdb', 'pg_execute_server_program', 'MEMBER')::text FROM pg_roles WHERE rolname = 'ferretdb'"))
    .toBe('true,false,false');
  try {
    const grant = await asFerretdb('GRANT pg_execute_server_program TO ferretdb');
    expect({ code: grant.code, stderr: grant.stderr }).toEqual({ code: 0, stderr: '' });
    const run = await asFerretdb("CREATE TEMP TABLE o (l text); COPY o FROM PROGRAM 'id -u'; SELECT l FROM o");
    const serverUid = (await pg.h.exec(PRIMARY, 'postgres', ['id', '-u'])).stdout.trim();
    expect({ code: run.code, out: run.stdout.trim() }).toEqual({ code: 0, out: serverUid });
  } finally {
    await pg.sql(PRIMARY, 'REVOKE pg_execute_server_program FROM ferretdb');
  }
});

test('a promotion through currentPrimary: the chosen standby becomes the only writable primary and the old primary follows it', async () => {
  await pg.h.apply(pg.synth({ currentPrimary: replica(0) }), { wait: false });
  await pg.h.waitUntil(`${replica(0)} is the only writable primary`, 180_000, async () =>
    (await pg.writablePrimaries(ALL)).join() === replica(0));
  await pg.h.waitReady(PRIMARY, 240_000);
  await pg.waitStreaming(replica(0), [replica(1), PRIMARY], 180_000);
  await pg.sql(replica(0), insert(101, 110));
  await pg.waitCount(PRIMARY, 't', 110);
  expect(await pg.writablePrimaries(ALL)).toEqual([replica(0)]);
}, 600_000);
