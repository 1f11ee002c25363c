import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { FerretDBCluster, FerretDBClusterProps, PostgresPrimary, ReplicationMode, StreamingReplica } from '../src';
import { byKind, containers, errorOf, megabytes, postgresConfigMap, postgresqlConf, rawSetting, synth, parsePostgresUrl } from './util';
import { RESTART_SETTINGS } from '../src/backends/statefulset/config-files';
import { DOCUMENTDB_IMAGE_SETTINGS } from '../src/postgres/config';
import { slotNameForPod } from '../src/private/names';

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

  test('the documentdb.* settings of FerretDB\'s postgres-documentdb image (its 10-preload.sh) that DocumentDB 0.107 knows are set to the image\'s values', () => {
    // The image's list, without enableSortbyIdPushDownToPrimaryKey (unknown to DocumentDB 0.107).
    expect(Object.fromEntries(DOCUMENTDB_IMAGE_SETTINGS)).toEqual({
      'documentdb.enableLetAndCollationForQueryMatch': 'true',
      'documentdb.enableNowSystemVariable': 'true',
      'documentdb.enableSchemaValidation': 'true',
      'documentdb.enableBypassDocumentValidation': 'true',
      'documentdb.enableUserCrud': 'true',
      'documentdb.maxUserLimit': '100',
    });
    for (const [name, value] of DOCUMENTDB_IMAGE_SETTINGS) expect({ name, value: conf[name] }).toEqual({ name, value });
  });

  test('a user parameter replaces an image documentdb.* setting instead of duplicating it', () => {
    const overridden = synth({ parameters: { 'documentdb.maxUserLimit': '50', 'documentdb.enableUserCrud': 'false' } });
    expect(postgresqlConf(overridden)['documentdb.maxUserLimit']).toBe('50');
    expect(postgresqlConf(overridden)['documentdb.enableUserCrud']).toBe('false');
    const lines = postgresConfigMap(overridden).data['postgresql.conf'].split('\n').filter((l: string) => /^documentdb\.(maxUserLimit|enableUserCrud)\b/.test(l));
    expect(lines).toHaveLength(2);
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
    const objs = synth({ parameters: { shared_buffers: '2GB', work_mem: '64MB', wal_level: 'logical' } });
    const conf = postgresqlConf(objs);
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
    ['max_connections', '300', 'maxConnections'],
    ['MAX_CONNECTIONS', '300', 'maxConnections'],
  ])('parameters cannot bypass the typed props (%s)', (name, value, prop) => {
    expect(() => synth({ parameters: { [name]: value } })).toThrow(new RegExp(`parameters\\["${name}"\\].*${value}.*${prop.replace('.', '\\.')}`));
  });
});

describe('DocumentDB and pg_cron connect back to the server over the pod-local socket', () => {
  const objs = synth();
  const conf = postgresqlConf(objs);
  const hba: string[][] = postgresConfigMap(objs).data['pg_hba.conf'].split('\n').map((l: string) => l.trim())
    .filter((l: string) => l !== '' && !l.startsWith('#')).map((l: string) => l.split(/\s+/));
  const runDir = containers(objs).find((c) => c.container.name === 'postgres')!.container.env.find((e: any) => e.name === 'RUN_DIR').value;

  test('cron.host is the socket directory (unix_socket_directories, the containers\' RUN_DIR)', () => {
    expect(conf['cron.host']).toBe(conf.unix_socket_directories);
    expect(conf.unix_socket_directories).toBe(runDir);
  });

  test('documentdb.localhost_connection_string is host=<the socket directory>', () => {
    expect(conf['documentdb.localhost_connection_string']).toBe(`host=${conf.unix_socket_directories}`);
  });

  test('pg_hba.conf lets those socket connections in without a password, for the database pg_cron and FerretDB use only', () => {
    expect(hba.filter((r) => r[0] === 'local' && r[r.length - 1] === 'trust')).toEqual([['local', conf['cron.database_name'], 'all', 'trust']]);
    expect(conf['cron.database_name']).toBe('postgres');
  });

  test.each(['cron.host', 'documentdb.localhost_connection_string', 'CRON.HOST'])('parameters may not set %s (reserved)', (name) => {
    const message = errorOf(() => synth({ parameters: { [name]: 'host=localhost' } }));
    expect(message).toContain(`parameters["${name}"]`);
    expect(message).toContain('managed by cdk8s-ferretdb');
  });
});

describe('connection budget (max_connections)', () => {
  const maxConnections = (props: FerretDBClusterProps) => Number(postgresqlConf(synth(props)).max_connections);

  test.each([
    ['the defaults (2 writers, 2 readers, pools of 20)', {}, ((2 + 1) + (2 + 1)) * 20 + 30],
    ['5 writers', { ferretdbWriterReplicas: 5 }, ((5 + 1) + (2 + 1)) * 20 + 30],
    ['7 readers', { ferretdbReaderReplicas: 7 }, ((2 + 1) + (7 + 1)) * 20 + 30],
    ['pools of 10', { ferretdbPoolSize: 10 }, ((2 + 1) + (2 + 1)) * 10 + 30],
    ['pools of 50, 3 writers, 1 reader', { ferretdbPoolSize: 50, ferretdbWriterReplicas: 3, ferretdbReaderReplicas: 1 }, ((3 + 1) + (1 + 1)) * 50 + 30],
    ['0 replicas (no reader side) and 7 readers', { replicas: 0, ferretdbReaderReplicas: 7 }, (2 + 1) * 20 + 30],
  ])('is the sum over both FerretDB sides of (pods + 1 surge pod) x the pool, + 30: a promoted replica serves both (%s)', (_what, props: FerretDBClusterProps, expected) => {
    expect(maxConnections(props)).toBe(expected);
  });

  test.each([
    ['the defaults', {}],
    ['5 writers, pools of 35', { ferretdbWriterReplicas: 5, ferretdbPoolSize: 35 }],
    ['9 readers, 1 writer', { ferretdbReaderReplicas: 9, ferretdbWriterReplicas: 1 }],
  ])('every FerretDB side at its rolling-update peak fits in max_connections with 30 to spare (%s, read from the manifests)', (_what, props: FerretDBClusterProps) => {
    const objs = synth(props);
    const max = Number(postgresqlConf(objs).max_connections);
    for (const d of byKind(objs, 'Deployment')) {
      const url = parsePostgresUrl(d.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value).url;
      const peakPods = d.spec.replicas + d.spec.strategy.rollingUpdate.maxSurge;
      const needed = peakPods * Number(url.searchParams.get('pool_max_conns')) + 30;
      expect({ deployment: d.metadata.name, fits: needed <= max }).toEqual({ deployment: d.metadata.name, fits: true });
    }
  });

  test('maxConnections overrides the derived value', () => {
    expect(maxConnections({ maxConnections: 500 })).toBe(500);
    expect(maxConnections({ maxConnections: 150 })).toBe(150);
  });

  test('max_connections is one value for every server (a standby needs at least the primary\'s): one postgresql.conf for both StatefulSets', () => {
    const objs = synth({ ferretdbWriterReplicas: 5 });
    const configMaps = byKind(objs, 'StatefulSet').map((sts) => sts.spec.template.spec.volumes.find((v: any) => v.name === 'config').configMap.name);
    expect(new Set(configMaps)).toEqual(new Set([postgresConfigMap(objs).metadata.name]));
  });

  test('a PostgresPrimary alone reserves clientConnections (default 70) + 30', () => {
    const conf = (props: any) => {
      const chart = Testing.chart();
      new PostgresPrimary(chart, 'pg', { name: 'pg', ...props });
      return postgresqlConf(Testing.synth(chart));
    };
    expect(conf({}).max_connections).toBe('100');
    expect(conf({ clientConnections: 10 }).max_connections).toBe('40');
    expect(conf({ clientConnections: 10, maxConnections: 45 }).max_connections).toBe('45');
  });
});

describe('changed scripts roll the pods (ferretdb.cdk8s.io/scripts)', () => {
  const objs = synth();
  const data: { [key: string]: string } = postgresConfigMap(objs).data;
  const scriptKeys = ['lib.sh', 'datadir.sh', 'postgres.sh', 'agent.sh', 'lifecycle.sh', 'cluster-state.sh', 'fencing.sh', 'lease.sh', 'setup.sql'];

  test('every PostgreSQL pod template carries a hash of the scripts the ConfigMap mounts (running shells keep old code until their pod restarts)', () => {
    const hash = createHash('sha256');
    for (const key of scriptKeys) hash.update(`${key}\n${data[key]}\n`);
    const expected = hash.digest('hex').slice(0, 16);
    const statefulSets = byKind(objs, 'StatefulSet');
    expect(statefulSets.length).toBeGreaterThanOrEqual(2);
    for (const sts of statefulSets) expect(sts.spec.template.metadata.annotations['ferretdb.cdk8s.io/scripts']).toBe(expected);
  });

  test('it covers every script key of the ConfigMap (a new script is not left out)', () => {
    const scripts = Object.keys(data).filter((k) => /\.(sh|sql)$/.test(k)).sort();
    expect(scripts).toEqual([...scriptKeys].sort());
  });

  test('settings alone do not change it (they have the restart-settings hash, or a reload)', () => {
    const value = (o: any[]) => byKind(o, 'StatefulSet')[0].spec.template.metadata.annotations['ferretdb.cdk8s.io/scripts'];
    expect(value(synth({ maxConnections: 500, parameters: { work_mem: '64MB' } }))).toBe(value(objs));
  });
});

describe('restart-only settings: their hash in postgresql.conf (ferretdb.restart_settings), by which the agents roll restarts', () => {
  /** postgresql.conf's ferretdb.restart_settings (one ConfigMap serves every PostgreSQL pod). */
  function hashOf(objs: any[]): string {
    const value = postgresqlConf(objs)['ferretdb.restart_settings'];
    expect(value).toMatch(/^[0-9a-f]{16}$/);
    return value;
  }
  const base = hashOf(synth());

  test('one ConfigMap serves every PostgreSQL StatefulSet, a second replica group\'s too, so every server reads the same hash', () => {
    const chart = Testing.chart();
    const cluster = new FerretDBCluster(chart, 'db', { name: 'x' });
    new StreamingReplica(chart, 'ZoneB', { primary: cluster.primary, replicas: 2, name: 'x-pg-zone-b' });
    const objs = Testing.synth(chart);
    const statefulSets = byKind(objs, 'StatefulSet');
    expect(statefulSets).toHaveLength(3);
    const configMaps = statefulSets.map((sts) => sts.spec.template.spec.volumes.find((v: any) => v.name === 'config').configMap.name);
    expect(new Set(configMaps)).toEqual(new Set([postgresConfigMap(objs).metadata.name]));
    expect(hashOf(objs)).toBe(base);
  });

  test('the pod templates do not change with restart-only settings: no StatefulSet rolls the pods all at once, in any order', () => {
    const template = (objs: any[]) => byKind(objs, 'StatefulSet').map((sts) => JSON.stringify(sts.spec.template));
    expect(template(synth({ maxConnections: 500, parameters: { shared_buffers: '1GB' } }))).toEqual(template(synth()));
  });

  test('parameters may not set it (it is the library\'s)', () => {
    expect(() => synth({ parameters: { 'ferretdb.restart_settings': 'x' } })).toThrow(/parameters\["ferretdb.restart_settings"\].*managed by cdk8s-ferretdb/);
  });

  const restartOnly: [string, FerretDBClusterProps][] = [
    ['maxConnections 500', { maxConnections: 500 }],
    ['5 FerretDB writers (a larger derived max_connections)', { ferretdbWriterReplicas: 5 }],
    ['ferretdbPoolSize 30 (a larger derived max_connections)', { ferretdbPoolSize: 30 }],
    ['parameters.shared_buffers', { parameters: { shared_buffers: '1GB' } }],
    ['parameters.SHARED_BUFFERS (upper case)', { parameters: { SHARED_BUFFERS: '1GB' } }],
    ['parameters.max_locks_per_transaction', { parameters: { max_locks_per_transaction: '128' } }],
    ['parameters.shared_preload_libraries', { parameters: { shared_preload_libraries: 'pg_cron,pg_documentdb_core,pg_documentdb,pg_stat_statements' } }],
    ['wal.maxWalSenders', { wal: { maxWalSenders: 40 } }],
    ['wal.maxReplicationSlots', { wal: { maxReplicationSlots: 40 } }],
    ['parameters.wal_level logical', { parameters: { wal_level: 'logical' } }],
  ];

  const reloadable: [string, FerretDBClusterProps][] = [
    ['ReplicationMode async -> synchronousQuorum(1)', { replicationMode: ReplicationMode.synchronousQuorum(1) }],
    ['parameters.work_mem', { parameters: { work_mem: '64MB' } }],
    ['wal.maxSlotWalKeepSize', { wal: { maxSlotWalKeepSize: '1GB' } }],
    ['wal.walKeepSize', { wal: { walKeepSize: '1GB' } }],
    ['wal.hotStandbyFeedback false', { wal: { hotStandbyFeedback: false } }],
    ['wal.walSenderTimeout', { wal: { walSenderTimeout: '30s' } }],
    ['parameters.documentdb.maxUserLimit', { parameters: { 'documentdb.maxUserLimit': '50' } }],
    ['maxReplicationLag (not a PostgreSQL setting)', { maxReplicationLag: '1GB' }],
  ];

  test.each(restartOnly)('changes when a setting that needs a restart changes (%s)', (_what, props) => {
    expect(hashOf(synth(props))).not.toBe(base);
  });

  test.each(reloadable)('does not change when only reloadable settings change (%s)', (_what, props) => {
    expect(hashOf(synth(props))).toBe(base);
  });

  test('changes exactly when postgresql.conf changes a RESTART_SETTINGS value (every variant above)', () => {
    const baseConf = postgresqlConf(synth());
    for (const [what, props] of [...restartOnly, ...reloadable]) {
      const objs = synth(props);
      const conf = postgresqlConf(objs);
      const changed = [...new Set([...Object.keys(conf), ...Object.keys(baseConf)])].filter((n) => conf[n] !== baseConf[n]);
      const expectChange = changed.some((n) => RESTART_SETTINGS.has(n.toLowerCase()));
      expect({ what, changed, rolls: hashOf(objs) !== base }).toEqual({ what, changed, rolls: expectChange });
    }
  });

  test('RESTART_SETTINGS holds every postmaster-context setting the constructs render by default', () => {
    const postmaster = ['listen_addresses', 'port', 'unix_socket_directories', 'hba_file', 'shared_preload_libraries', 'cron.database_name',
      'cron.host', 'max_connections', 'wal_level', 'max_wal_senders', 'max_replication_slots', 'hot_standby', 'wal_log_hints', 'logging_collector'];
    const rendered = Object.keys(postgresqlConf(synth()));
    for (const name of postmaster) {
      expect(rendered).toContain(name);
      expect({ name, restart: RESTART_SETTINGS.has(name) }).toEqual({ name, restart: true });
    }
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
    // conninfo's third argument defaults to the pod's name; only a clone passes another one.
    expect(postgresConfigMap(objs).data['lib.sh']).toMatch(/application_name=%s[^\n]*\n[^\n]*"\$\{3:-\$POD_NAME\}"/);
  });

  test('a clone (pg_basebackup) connects with a name the list does not hold, so it never acknowledges a commit', () => {
    const objs = synth({ replicationMode: ReplicationMode.synchronousQuorum(1) });
    const datadir = postgresConfigMap(objs).data['datadir.sh'];
    const clone = datadir.split('\n').find((l: string) => l.includes('pg_basebackup -D'));
    expect(clone).toContain('conninfo "$PRIMARY_HOST" 5 "$POD_NAME-clone"');
    expect(postgresqlConf(objs).synchronous_standby_names).not.toContain('-clone');
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
    for (const { container } of containers(synth()).filter((c) => c.kind === 'StatefulSet' && !['state', 'lease'].includes(c.container.name))) {
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

  test('the only trust rule is `local postgres all trust` (DocumentDB\'s and pg_cron\'s socket connections); no md5, password or ident', () => {
    expect(rules.length).toBeGreaterThan(3);
    expect(rules.filter((r) => r[r.length - 1] === 'trust')).toEqual([['local', 'postgres', 'all', 'trust']]);
    for (const r of rules) expect(['md5', 'password', 'ident']).not.toContain(r[r.length - 1]);
  });

  test('no host rule trusts: every network connection authenticates (or is rejected)', () => {
    for (const r of rules.filter((rule) => rule[0].startsWith('host'))) {
      expect(['scram-sha-256', 'reject']).toContain(r[r.length - 1]);
    }
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

  test('local connections: peer for the postgres superuser first (it never reaches the trust rule), then trust to the postgres database', () => {
    expect(rules.filter((r) => r[0] === 'local')).toEqual([['local', 'all', 'postgres', 'peer'], ['local', 'postgres', 'all', 'trust']]);
  });

  test('no rule for replication connections is local: a replication connection always authenticates over the network', () => {
    for (const r of rules.filter((rule) => rule[1].split(',').includes('replication'))) expect(r[0]).toBe('host');
    // `all` does not match replication connections, so the local trust rule cannot either.
    expect(rules.filter((r) => r[0] === 'local').map((r) => r[1])).not.toContain('replication');
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

  /** The SQL statements, comments and psql meta-command lines (\if, \endif, \set) removed, each on one line. */
  const statements = sql.replace(/--[^\n]*/g, '').replace(/^\\[^\n]*/gm, '').split(';').map((st) => st.replace(/\s+/g, ' ').trim()).filter((st) => st !== '');
  const grantsTo = (variable: string) => statements.filter((st) => /^GRANT /.test(st) && st.includes(`TO :"${variable}"`));

  test('the replication role gets only LOGIN REPLICATION, EXECUTE on the pg_rewind functions and USAGE on DocumentDB\'s schemas (documentdb_core among them)', () => {
    const attrs = attributes('replication_user');
    expect(attrs).toEqual(expect.arrayContaining(['LOGIN', 'REPLICATION']));
    for (const forbidden of ['SUPERUSER', 'CREATEDB', 'CREATEROLE', 'BYPASSRLS']) expect(attrs).not.toContain(forbidden);
    // No role memberships: EXECUTE on the functions pg_rewind uses, and the schema every SQL session needs once DocumentDB is loaded.
    const grants = grantsTo('replication_user');
    const execute = grants.filter((g) => g.startsWith('GRANT EXECUTE'));
    expect(execute.length).toBeGreaterThan(0);
    for (const g of execute) expect(g).toMatch(/^GRANT EXECUTE ON FUNCTION pg_catalog\.\w+\([^)]*\) TO :"replication_user"$/);
    const others = grants.filter((g) => !g.startsWith('GRANT EXECUTE'));
    expect(others).toHaveLength(1);
    // USAGE only (no table, function or role), on DocumentDB's schemas only, documentdb_core among them.
    const usage = /^GRANT USAGE ON SCHEMA ([\w, ]+) TO :"replication_user"$/.exec(others[0]);
    expect(usage).not.toBeNull();
    const schemas = usage![1].split(',').map((schema) => schema.trim());
    expect(schemas).toContain('documentdb_core');
    for (const schema of schemas) expect(schema).toMatch(/^documentdb_\w+$/);
  });

  test('FerretDB\'s role is not a superuser and cannot replicate', () => {
    const attrs = attributes('ferretdb_user');
    expect(attrs).toContain('LOGIN');
    expect(attrs).toContain('NOSUPERUSER');
    expect(attrs).not.toContain('SUPERUSER');
    expect(attrs).not.toContain('REPLICATION');
    expect(attrs).toContain('NOREPLICATION');
  });

  test('FerretDB\'s role gets documentdb_admin_role, documentdb_readonly_role and pg_read_all_data WITH ADMIN OPTION (MongoDB createUser grants them on PostgreSQL 16+), and nothing else', () => {
    expect(grantsTo('ferretdb_user')).toEqual([
      'GRANT documentdb_admin_role, documentdb_readonly_role, pg_read_all_data TO :"ferretdb_user" WITH ADMIN OPTION',
    ]);
    expect(sql).not.toMatch(/pg_write_all_data|pg_write_server_files|pg_execute_server_program/);
  });

  test('the DocumentDB extension is created, then updated to the image\'s version, before its schema is granted', () => {
    const create = statements.indexOf('CREATE EXTENSION IF NOT EXISTS documentdb CASCADE');
    const update = statements.indexOf('ALTER EXTENSION documentdb UPDATE');
    const usage = statements.findIndex((l) => l.startsWith('GRANT USAGE ON SCHEMA documentdb_core'));
    const admin = statements.findIndex((l) => l.startsWith('GRANT documentdb_admin_role'));
    expect(create).toBeGreaterThanOrEqual(0);
    expect(update).toBe(create + 1);
    expect(usage).toBeGreaterThan(update);
    expect(admin).toBeGreaterThan(update);
  });

  test('roles are created without extra attributes and passwords come from psql variables (the exporter\'s role has none)', () => {
    const creates = sql.match(/CREATE ROLE[^\n]*/g) ?? [];
    expect(creates).toEqual(['CREATE ROLE %I\', :\'replication_user\')', 'CREATE ROLE %I\', :\'ferretdb_user\')', 'CREATE ROLE postgres_exporter\'']);
    const passwords = sql.match(/PASSWORD\s+[^;\s]+/g) ?? [];
    expect(passwords).toEqual(['PASSWORD :\'replication_password\'', 'PASSWORD :\'ferretdb_password\'', 'PASSWORD NULL']);
  });
});
