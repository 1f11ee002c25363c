import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { FerretDBCluster, ReplicationMode, StreamingReplica } from '../src';
import { byKind, containers, megabytes, postgresConfigMap, postgresqlConf, rawSetting, synth } from './util';
import { slotNameForPod } from '../src/names';

function podCount(objs: any[]): number {
  return byKind(objs, 'StatefulSet').reduce((n, s) => n + s.spec.replicas, 0);
}

describe('postgresql.conf defaults', () => {
  const objs = synth();
  const conf = postgresqlConf(objs);

  test('streaming replication is on: wal_level replica, hot_standby on', () => {
    expect(conf.wal_level).toBe('replica');
    expect(conf.hot_standby).toBe('on');
  });

  test.each([0, 2, 20, 100])('max_wal_senders and max_replication_slots exceed the pod count with headroom (replicas: %i)', (replicas) => {
    const o = synth({ replicas });
    const c = postgresqlConf(o);
    const pods = podCount(o);
    expect(pods).toBe(replicas + 1);
    // Every standby streams, and a cloning standby's pg_basebackup uses two more senders.
    expect(Number(c.max_wal_senders)).toBeGreaterThanOrEqual(pods + 2);
    expect(Number(c.max_wal_senders)).toBeGreaterThanOrEqual(10);
    // One slot per pod (a promoted replica keeps slots for every other pod), plus spare ones.
    expect(Number(c.max_replication_slots)).toBeGreaterThan(pods);
    expect(Number(c.max_replication_slots)).toBeGreaterThanOrEqual(pods + 2);
  });

  test('wal_keep_size is set', () => {
    expect(megabytes(conf.wal_keep_size)).toBeGreaterThan(0);
  });

  test.each([
    ['10Gi', 2560],
    ['40Gi', 10240],
    ['100Gi', 25600],
  ])('max_slot_wal_keep_size is bounded: a quarter of a %s volume is %iMB', (size, mb) => {
    const c = postgresqlConf(synth({ storage: { size } }));
    expect(c.max_slot_wal_keep_size).toBe(`${mb}MB`);
  });

  test('max_slot_wal_keep_size is never unbounded (-1) and smaller than the volume', () => {
    for (const size of ['1Gi', '10Gi', '1Ti']) {
      const value = postgresqlConf(synth({ storage: { size } })).max_slot_wal_keep_size;
      expect(value).not.toBe('-1');
      const volumeMB = Number(size.slice(0, -2)) * (size.endsWith('Ti') ? 1024 * 1024 : 1024);
      expect(megabytes(value)).toBeGreaterThan(0);
      expect(megabytes(value)).toBeLessThan(volumeMB);
    }
  });

  test('the default bound follows the smallest PostgreSQL volume (a second replica group with 2Gi volumes)', () => {
    const chart = Testing.chart();
    const cluster = new FerretDBCluster(chart, 'db', { name: 'x', storage: { size: '10Gi' } });
    new StreamingReplica(chart, 'Small', { primary: cluster.primary, replicas: 1, name: 'x-pg-small', storage: { size: '2Gi' } });
    const value = postgresqlConf(Testing.synth(chart)).max_slot_wal_keep_size;
    // A promoted pod of that group must not be able to fill its own 2Gi volume with WAL held for a dead standby.
    expect(megabytes(value)).toBeLessThanOrEqual(2048 / 4);
  });

  test('hot_standby_feedback and wal_log_hints are on', () => {
    expect(conf.hot_standby_feedback).toBe('on');
    expect(conf.wal_log_hints).toBe('on');
  });

  test('wal_sender_timeout and wal_receiver_timeout are set', () => {
    expect(conf.wal_sender_timeout).toMatch(/^\d+(ms|s|min)$/);
    expect(conf.wal_receiver_timeout).toMatch(/^\d+(ms|s|min)$/);
  });

  test('shared_preload_libraries has pg_cron, pg_documentdb_core, pg_documentdb; cron.database_name is postgres', () => {
    expect(conf.shared_preload_libraries.split(',').map((s) => s.trim())).toEqual(
      expect.arrayContaining(['pg_cron', 'pg_documentdb_core', 'pg_documentdb']));
    expect(conf['cron.database_name']).toBe('postgres');
  });

  test('the servers listen on 5432 on every address, with pg_hba.conf from the ConfigMap', () => {
    expect(conf.port).toBe('5432');
    expect(conf.listen_addresses).toBe('*');
    expect(conf.password_encryption).toBe('scram-sha-256');
    expect(conf.hba_file).toBe('/etc/ferretdb-postgres/pg_hba.conf');
    expect(Object.keys(postgresConfigMap(objs).data)).toContain('pg_hba.conf');
  });

  test('every setting appears once', () => {
    const names = postgresConfigMap(objs).data['postgresql.conf'].split('\n')
      .filter((l: string) => /^[A-Za-z]/.test(l)).map((l: string) => l.split('=')[0].trim().toLowerCase());
    expect(names.filter((n: string, i: number) => names.indexOf(n) !== i)).toEqual([]);
  });
});

describe('overrides', () => {
  test('typed wal props override the defaults', () => {
    const conf = postgresqlConf(synth({
      wal: {
        walKeepSize: '2GB',
        maxSlotWalKeepSize: '4096MB',
        maxWalSenders: 40,
        maxReplicationSlots: 30,
        hotStandbyFeedback: false,
        walSenderTimeout: '30s',
        walReceiverTimeout: '1min',
      },
    }));
    expect(conf.wal_keep_size).toBe('2GB');
    expect(conf.max_slot_wal_keep_size).toBe('4096MB');
    expect(conf.max_wal_senders).toBe('40');
    expect(conf.max_replication_slots).toBe('30');
    expect(conf.hot_standby_feedback).toBe('off');
    expect(conf.wal_sender_timeout).toBe('30s');
    expect(conf.wal_receiver_timeout).toBe('1min');
  });

  test('parameters override defaults and add settings', () => {
    const objs = synth({ parameters: { max_connections: '300', shared_buffers: '2GB', work_mem: '64MB', wal_level: 'logical' } });
    const conf = postgresqlConf(objs);
    expect(conf.max_connections).toBe('300');
    expect(conf.shared_buffers).toBe('2GB');
    expect(conf.work_mem).toBe('64MB');
    expect(conf.wal_level).toBe('logical');
  });

  test('parameters are rendered quoted, with quotes and backslashes escaped', () => {
    const objs = synth({
      parameters: {
        'log_line_prefix': 'it\'s %m \\ ',
        'application_name': 'a b # not a comment',
        'search_path': '"$user", public',
        'documentdb.maxUserLimit': '50',
      },
    });
    expect(rawSetting(objs, 'log_line_prefix')).toBe('\'it\'\'s %m \\\\ \'');
    expect(rawSetting(objs, 'application_name')).toBe('\'a b # not a comment\'');
    expect(rawSetting(objs, 'search_path')).toBe('\'"$user", public\'');
    expect(rawSetting(objs, 'documentdb.maxUserLimit')).toBe('\'50\'');
    const conf = postgresqlConf(objs);
    expect(conf.log_line_prefix).toBe('it\'s %m \\ ');
    expect(conf.search_path).toBe('"$user", public');
  });

  test('a parameter that differs only in case replaces the default instead of duplicating it', () => {
    const objs = synth({ parameters: { WAL_LEVEL: 'logical' } });
    const lines = postgresConfigMap(objs).data['postgresql.conf'].split('\n').filter((l: string) => /^wal_level/i.test(l));
    expect(lines).toEqual(['WAL_LEVEL = \'logical\'']);
  });

  test.each([
    ['max_slot_wal_keep_size', '-1', 'wal.maxSlotWalKeepSize'],
    ['WAL_KEEP_SIZE', '3GB', 'wal.walKeepSize'],
    ['max_wal_senders', '1', 'wal.maxWalSenders'],
  ])('parameters cannot bypass the typed WAL props (%s)', (name, value, prop) => {
    expect(() => synth({ parameters: { [name]: value } })).toThrow(new RegExp(`parameters\\["${name}"\\].*${value}.*${prop.replace('.', '\\.')}`));
  });
});

describe('synchronous_standby_names', () => {
  test('is empty by default (asynchronous)', () => {
    expect(postgresqlConf(synth()).synchronous_standby_names).toBe('');
    expect(rawSetting(synth(), 'synchronous_standby_names')).toBe('\'\'');
  });

  test('is a quorum over every PostgreSQL pod with ReplicationMode.synchronousQuorum(1)', () => {
    const conf = postgresqlConf(synth({ replicationMode: ReplicationMode.synchronousQuorum(1) }));
    expect(conf.synchronous_standby_names).toBe('ANY 1 ("x-pg-primary-0", "x-pg-replica-0", "x-pg-replica-1")');
  });

  test('the quorum count follows the mode and the list follows the replica count', () => {
    const conf = postgresqlConf(synth({ replicas: 3, replicationMode: ReplicationMode.synchronousQuorum(2) }));
    expect(conf.synchronous_standby_names)
      .toBe('ANY 2 ("x-pg-primary-0", "x-pg-replica-0", "x-pg-replica-1", "x-pg-replica-2")');
  });

  test('the names are the application_name each standby connects with (its pod name)', () => {
    const objs = synth({ replicationMode: ReplicationMode.synchronousQuorum(1) });
    const members = postgresConfigMap(objs).data.members.trim().split('\n');
    const listed = /\((.*)\)/.exec(postgresqlConf(objs).synchronous_standby_names)![1].split(', ').map((s) => JSON.parse(s));
    expect(listed).toEqual(members);
    expect(postgresConfigMap(objs).data['lib.sh']).toMatch(/application_name=%s[^\n]*\n[^\n]*"\$POD_NAME"/);
  });
});

describe('replication slot names', () => {
  const allPods = (objs: any[]) => byKind(objs, 'StatefulSet')
    .flatMap((s) => Array.from({ length: s.spec.replicas }, (_, i) => `${s.metadata.name}-${i}`));

  test('slotNameForPod gives a valid, distinct slot name for every pod', () => {
    for (const props of [{}, { replicas: 100 }, { name: 'a'.repeat(40), replicas: 12 }]) {
      const pods = allPods(synth(props));
      const slots = pods.map(slotNameForPod);
      for (const slot of slots) expect(slot).toMatch(/^[a-z0-9_]{1,63}$/);
      expect(new Set(slots).size).toBe(pods.length);
    }
  });

  test('slotNameForPod uses the prefix the pods are given (SLOT_PREFIX)', () => {
    const prefix = slotNameForPod('');
    for (const { container } of containers(synth()).filter((c) => c.kind === 'StatefulSet')) {
      expect(container.env.find((e: any) => e.name === 'SLOT_PREFIX')?.value).toBe(prefix);
    }
  });

  test('slotNameForPod agrees with slot_name of lib.sh (as shipped in the ConfigMap)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-slot-'));
    try {
      const objs = synth();
      fs.writeFileSync(path.join(dir, 'lib.sh'), postgresConfigMap(objs).data['lib.sh']);
      const names = [
        'x-pg-primary-0', 'x-pg-replica-1', 'X-PG-Replica-12', 'UPPER_lower.dots-9',
        `${'a'.repeat(40)}-pg-replica-99`, 'b'.repeat(80), `${'Long-Name.'.repeat(8)}-0`, 'a b:c/d',
        ...allPods(synth({ name: 'q'.repeat(40), replicas: 11 })),
      ];
      const out = execFileSync('bash', ['-c', '. "$0/lib.sh"; for n in "$@"; do slot_name "$n"; echo; done', dir, ...names], {
        env: {
          PATH: process.env.PATH,
          LC_ALL: 'C',
          PGDATA: 'x',
          POD_NAME: 'x',
          PRIMARY_HOST: 'x',
          REPLICATION_USER: 'x',
          FERRETDB_USER: 'x',
          SLOT_PREFIX: slotNameForPod(''),
        },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(out.split('\n').slice(0, -1)).toEqual(names.map(slotNameForPod));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('pg_hba.conf', () => {
  const objs = synth();
  const hba: string = postgresConfigMap(objs).data['pg_hba.conf'];
  const rules = hba.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(/\s+/));
  const env = (name: string) => containers(objs).find((c) => c.container.name === 'postgres')!.container.env
    .find((e: any) => e.name === name).value;

  test('has no trust, md5 or password rule', () => {
    expect(rules.length).toBeGreaterThan(3);
    for (const r of rules) expect(['trust', 'md5', 'password', 'ident']).not.toContain(r[r.length - 1]);
    expect(hba).not.toMatch(/\btrust\b/);
  });

  test('every host rule but the final reject uses scram-sha-256', () => {
    const host = rules.filter((r) => r[0].startsWith('host'));
    expect(host.length).toBeGreaterThan(2);
    for (const r of host.slice(0, -1)) {
      expect(r[0]).toBe('host');
      expect(r[r.length - 1]).toBe('scram-sha-256');
    }
  });

  test('ends with a reject rule for everything', () => {
    expect(rules[rules.length - 1]).toEqual(['host', 'all', 'all', 'all', 'reject']);
  });

  test('only the replication role may open replication connections', () => {
    // `all` does not match replication connections: only the `replication` keyword does.
    const replication = rules.filter((r) => r[1].split(',').includes('replication'));
    expect(replication).toEqual([['host', 'replication', env('REPLICATION_USER'), 'all', 'scram-sha-256']]);
  });

  test('local connections: peer, for postgres only', () => {
    expect(rules.filter((r) => r[0] === 'local')).toEqual([['local', 'all', 'postgres', 'peer']]);
  });

  test('the roles of pg_hba.conf are the ones the pods are configured with', () => {
    const users = new Set(rules.filter((r) => r[0] === 'host').map((r) => r[2]));
    expect(users).toContain(env('REPLICATION_USER'));
    expect(users).toContain(env('FERRETDB_USER'));
  });
});

describe('setup.sql roles', () => {
  const sql: string = postgresConfigMap(synth()).data['setup.sql'];
  const attributes = (variable: string) => {
    const m = new RegExp(`ALTER ROLE :"${variable}" WITH ([^;]*?)\\s+PASSWORD`, 's').exec(sql);
    expect(m).not.toBeNull();
    return m![1].split(/\s+/);
  };

  test('the replication role gets only LOGIN REPLICATION', () => {
    const attrs = attributes('replication_user');
    expect(attrs).toEqual(expect.arrayContaining(['LOGIN', 'REPLICATION']));
    for (const forbidden of ['SUPERUSER', 'CREATEDB', 'CREATEROLE', 'BYPASSRLS']) expect(attrs).not.toContain(forbidden);
    // No role memberships: only EXECUTE on the functions pg_rewind uses.
    const grants = sql.split('\n').filter((l) => /^GRANT .* TO :"replication_user"/.test(l));
    expect(grants.length).toBeGreaterThan(0);
    for (const g of grants) expect(g).toMatch(/^GRANT EXECUTE ON FUNCTION pg_catalog\.\w+\([^)]*\) TO :"replication_user";$/);
  });

  test('FerretDB\'s role is not a superuser and cannot replicate', () => {
    const attrs = attributes('ferretdb_user');
    expect(attrs).toContain('LOGIN');
    expect(attrs).toContain('NOSUPERUSER');
    expect(attrs).not.toContain('SUPERUSER');
    expect(attrs).not.toContain('REPLICATION');
    expect(sql).not.toMatch(/TO :"ferretdb_user"[^;]*WITH ADMIN/i);
  });

  test('roles are created without extra attributes and passwords come from psql variables', () => {
    const creates = sql.match(/CREATE ROLE[^\n]*/g) ?? [];
    expect(creates).toEqual(['CREATE ROLE %I\', :\'replication_user\')', 'CREATE ROLE %I\', :\'ferretdb_user\')']);
    const passwords = sql.match(/PASSWORD\s+[^;\s]+/g) ?? [];
    expect(passwords).toEqual(['PASSWORD :\'replication_password\'', 'PASSWORD :\'ferretdb_password\'']);
  });
});
