/**
 * Scenarios both PostgreSQL majors run on a booted three-pod cluster (test/e2e/postgres15.test.ts
 * on the host's PostgreSQL 15, test/e2e/userlands.test.ts in the images' userlands).
 */
import { insert, PgCluster, PRIMARY, replica, TABLE } from './fixture';

/** The primary streams to both standbys through their slots, and rows written on it reach them. */
export async function expectStreamingToBothStandbys(pg: PgCluster): Promise<void> {
  await pg.waitStreaming(PRIMARY, [replica(0), replica(1)]);
  await pg.sql(PRIMARY, `${TABLE}; ${insert(1, 100)}`);
  await pg.waitCount(replica(0), 't', 100);
  await pg.waitCount(replica(1), 't', 100);
  expect(await pg.inRecovery(replica(0))).toBe(true);
  expect(await pg.inRecovery(replica(1))).toBe(true);
}

/**
 * documentdb_api.create_user as the ferretdb role over the socket, one user of each role set
 * (readAnyDatabase; clusterAdmin with readWriteAnyDatabase); each becomes a member of its
 * DocumentDB role.
 */
export async function expectCreateUserOfBothRoleSets(pg: PgCluster): Promise<void> {
  const roles = (user: string, list: string[]): string => JSON.stringify({ createUser: user, pwd: `${user}-pw`, roles: list.map((role) => ({ role, db: 'admin' })) });
  for (const [user, list] of [['reporting', ['readAnyDatabase']], ['orders_app', ['clusterAdmin', 'readWriteAnyDatabase']]] as const) {
    const r = await pg.h.exec(PRIMARY, 'postgres', ['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'ferretdb', '-d', 'postgres',
      '-c', `SELECT documentdb_api.create_user('${roles(user, [...list])}'::documentdb_core.bson)`]);
    // { ok: 1 } as psql prints a bson without EJSON output: 13 bytes, an int32 "ok" of 1.
    expect({ user, code: r.code, stderr: r.stderr, ok: r.stdout.trim() === 'BSONHEX0d000000106f6b000100000000' || r.stdout })
      .toEqual({ user, code: 0, stderr: '', ok: true });
  }
  const members = await pg.sql(PRIMARY, `SELECT string_agg(m.rolname || '>' || r.rolname, ',' ORDER BY 1)
    FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
    WHERE m.rolname IN ('reporting', 'orders_app')`);
  if (!/orders_app>documentdb_admin_role.*reporting>documentdb_readonly_role/.test(members)) {
    // Say why: the roles as the server sees them now, and what its log says.
    const existing = await pg.sql(PRIMARY, "SELECT string_agg(rolname || ' login=' || rolcanlogin, ', ') FROM pg_roles WHERE rolname IN ('reporting', 'orders_app')");
    throw new Error(`memberships: '${members}'; roles: '${existing}'; recovery: ${await pg.inRecovery(PRIMARY)}\n`
      + `--- ${PRIMARY} postgres ---\n${pg.h.logs(PRIMARY, 'postgres').split('\n').slice(-40).join('\n')}`);
  }
}
