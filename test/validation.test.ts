import { Duration, Testing } from 'cdk8s';
import { Credentials, FerretDBCluster, FerretDBClusterProps, MAX_CLUSTER_NAME, PostgresPrimary, ReplicationMode } from '../src';
import { byKind, errorOf, postgresqlConf, synth, validateAll } from './util';

/** Whether the message shows the value as a whole token (not as part of a longer number or word). */
function mentions(message: string, value: string): boolean {
  const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![A-Za-z0-9.])${escaped}(?![A-Za-z0-9])`).test(message);
}

function expectInvalid(message: string, prop: string, value: string): void {
  expect({ message, prop: message.includes(prop), value: mentions(message, value) })
    .toEqual({ message, prop: true, value: true });
}

/** Builds the cluster and synthesizes it: the error may come from either step. */
function build(props: FerretDBClusterProps): any[] {
  return synth(props);
}

const invalidProps: [string, FerretDBClusterProps, string, string][] = [
  ['replicas -1', { replicas: -1 }, 'replicas', '-1'],
  ['postgresShutdownTimeout of 5 s (below 10 s)', { postgresShutdownTimeout: Duration.seconds(5) }, 'postgresShutdownTimeout', '5s'],
  ['postgresShutdownTimeout of 1.5 s', { postgresShutdownTimeout: Duration.millis(1500) }, 'postgresShutdownTimeout', '1.5s'],
  ['postgresShutdownTimeout of 2 days', { postgresShutdownTimeout: Duration.days(2) }, 'postgresShutdownTimeout', '172800s'],
  ['postgresShutdownTimeout as a number', { postgresShutdownTimeout: 60 as any }, 'postgresShutdownTimeout', '60'],
  ['replicas 1.5', { replicas: 1.5 }, 'replicas', '1.5'],
  ['replicas "two"', { replicas: 'two' as any }, 'replicas', 'two'],
  ['replicas above the maximum (101)', { replicas: 101 }, 'replicas', '101'],
  ['storage size "10 GB"', { storage: { size: '10 GB' } }, 'storage', '10 GB'],
  ['storage size "abc"', { storage: { size: 'abc' } }, 'storage', 'abc'],
  ['storage size "-1Gi"', { storage: { size: '-1Gi' } }, 'storage', '-1Gi'],
  ['storage size "0"', { storage: { size: '0' } }, 'storage', '0'],
  ['ferretdbResources.memoryLimit "lots"', { ferretdbResources: { memoryLimit: 'lots' } }, 'ferretdbResources.memoryLimit', 'lots'],
  ['postgresResources.memoryLimit "lots"', { postgresResources: { memoryLimit: 'lots' } }, 'postgresResources.memoryLimit', 'lots'],
  ['postgresResources.memoryRequest above its memoryLimit', { postgresResources: { memoryRequest: '2Gi', memoryLimit: '1Gi' } }, 'memoryRequest', '2Gi'],
  ['wal.maxSlotWalKeepSize "20GB" on a 10Gi volume', { wal: { maxSlotWalKeepSize: '20GB' }, storage: { size: '10Gi' } }, 'wal.maxSlotWalKeepSize', '20GB'],
  ['wal.maxSlotWalKeepSize "-1" (unbounded)', { wal: { maxSlotWalKeepSize: '-1' } }, 'wal.maxSlotWalKeepSize', '-1'],
  ['wal.walKeepSize "big"', { wal: { walKeepSize: 'big' } }, 'wal.walKeepSize', 'big'],
  ['wal.walSenderTimeout "soon"', { wal: { walSenderTimeout: 'soon' } }, 'wal.walSenderTimeout', 'soon'],
  ['parameters {"bad name": "1"}', { parameters: { 'bad name': '1' } }, 'parameters', 'bad name'],
  ['parameters {listen_addresses: "x"}', { parameters: { listen_addresses: 'x' } }, 'listen_addresses', 'x'],
  ['parameters {port: "1"}', { parameters: { port: '1' } }, 'port', '1'],
  ['parameters {synchronous_standby_names: "FIRST 1 (a)"}', { parameters: { synchronous_standby_names: 'FIRST 1 (a)' } }, 'synchronous_standby_names', 'FIRST 1 (a)'],
  ['parameters {shared_preload_libraries: "pg_stat_statements"}', { parameters: { shared_preload_libraries: 'pg_stat_statements' } },
    'shared_preload_libraries', 'pg_stat_statements'],
  ['parameters {wal_level: "minimal"}', { parameters: { wal_level: 'minimal' } }, 'wal_level', 'minimal'],
  ['parameters with a newline in a value', { parameters: { work_mem: '4MB\nfsync = off' } }, 'work_mem', '4MB\\nfsync = off'],
  ['name "Bad_Name"', { name: 'Bad_Name' }, 'name', 'Bad_Name'],
  ['a 41-character name', { name: 'a'.repeat(41) }, 'name', 'a'.repeat(41)],
  ['name starting with a digit', { name: '1db' }, 'name', '1db'],
  ['replicationMode given as a plain object', { replicationMode: { synchronousStandbys: 1 } as any }, 'replicationMode', 'synchronousStandbys'],
  ['replicationMode given as a string', { replicationMode: 'sync' as any }, 'replicationMode', 'sync'],
  ['credentials given as a string', { credentials: 'my-secret' as any }, 'credentials', 'my-secret'],
  ['ferretdbWriterReplicas 0', { ferretdbWriterReplicas: 0 }, 'ferretdbWriterReplicas', '0'],
  ['ferretdbReaderReplicas 0', { ferretdbReaderReplicas: 0 }, 'ferretdbReaderReplicas', '0'],
  ['ferretdbImage with upper case and spaces', { ferretdbImage: 'My Image' }, 'ferretdbImage', 'My Image'],
  ['postgresImage with upper case and spaces', { postgresImage: 'My Image' }, 'postgresImage', 'My Image'],
  ['ferretdbPoolSize 0', { ferretdbPoolSize: 0 }, 'ferretdbPoolSize', '0'],
  ['ferretdbPoolSize 2.5', { ferretdbPoolSize: 2.5 }, 'ferretdbPoolSize', '2.5'],
  ['ferretdbPoolSize above the maximum (1001)', { ferretdbPoolSize: 1001 }, 'ferretdbPoolSize', '1001'],
  ['maxConnections 0', { maxConnections: 0 }, 'maxConnections', '0'],
  ['maxConnections 150.5', { maxConnections: 150.5 }, 'maxConnections', '150.5'],
  ['parameters {max_connections: "300"} (typed: maxConnections)', { parameters: { max_connections: '300' } }, 'maxConnections', '300'],
  ['parameters {"cron.host": "localhost"} (reserved)', { parameters: { 'cron.host': 'localhost' } }, 'cron.host', 'localhost'],
  ['parameters {"documentdb.localhost_connection_string": "host=localhost"} (reserved)',
    { parameters: { 'documentdb.localhost_connection_string': 'host=localhost' } }, 'documentdb.localhost_connection_string', 'host=localhost'],
  ['maxReplicationLag "lots"', { maxReplicationLag: 'lots' }, 'maxReplicationLag', 'lots'],
  ['maxReplicationLag "-1MB"', { maxReplicationLag: '-1MB' }, 'maxReplicationLag', '-1MB'],
  ['maxReplicationLag "64Mi" (a Kubernetes quantity, not a PostgreSQL size)', { maxReplicationLag: '64Mi' }, 'maxReplicationLag', '64Mi'],
  ['allowedNamespaces ["Bad_NS"]', { allowedNamespaces: ['Bad_NS'] }, 'allowedNamespaces[0]', 'Bad_NS'],
  ['allowedNamespaces ["web", "-x"]', { allowedNamespaces: ['web', '-x'] }, 'allowedNamespaces[1]', '-x'],
  ['allowedNamespaces with a 64-character name', { allowedNamespaces: ['n'.repeat(64)] }, 'allowedNamespaces[0]', 'n'.repeat(64)],
];

describe('invalid props fail with an Error naming the prop and the value', () => {
  test.each(invalidProps)('%s', (_what, props, prop, value) => {
    expectInvalid(errorOf(() => build(props)), prop, value);
  });

  test('ReplicationMode.synchronousQuorum(3) with 2 replicas', () => {
    const message = errorOf(() => build({ replicas: 2, replicationMode: ReplicationMode.synchronousQuorum(3) }));
    expectInvalid(message, 'replicationMode', '3');
  });

  test('ReplicationMode.synchronousQuorum(1) with 0 replicas', () => {
    const message = errorOf(() => build({ replicas: 0, replicationMode: ReplicationMode.synchronousQuorum(1) }));
    expectInvalid(message, 'replicationMode', '1');
  });

  test.each([
    ['the default pools ((2+1)+(2+1) pods x 20 + 30 = 150)', {}, 149, 150],
    ['5 writers ((5+1)+(2+1) pods x 20 + 30 = 210)', { ferretdbWriterReplicas: 5 }, 209, 210],
    ['7 readers and pools of 10 ((2+1)+(7+1) pods x 10 + 30 = 140)', { ferretdbReaderReplicas: 7, ferretdbPoolSize: 10 }, 100, 140],
  ])('maxConnections below what the FerretDB pools need fails synth naming maxConnections, the value and the need (%s)', (_what, props, given, needed) => {
    // Found when the tree is complete (node validation), reported by synth.
    const chart = Testing.chart();
    new FerretDBCluster(chart, 'db', { name: 'x', ...props, maxConnections: given });
    const message = errorOf(() => Testing.synth(chart));
    expectInvalid(message, 'maxConnections', String(given));
    expect(message).toContain(`at least ${needed}`);
    // The need itself is accepted.
    expect(postgresqlConf(synth({ ...props, maxConnections: needed })).max_connections).toBe(String(needed));
  });

  test('a PostgresPrimary whose maxConnections leaves fewer than 30 connections beyond clientConnections fails synth naming maxConnections', () => {
    const chart = Testing.chart();
    new PostgresPrimary(chart, 'pg', { name: 'pg', clientConnections: 50, maxConnections: 79 });
    const message = errorOf(() => Testing.synth(chart));
    expectInvalid(message, 'maxConnections', '79');
    expect(message).toContain('at least 80');
  });

  test.each([
    ['clientConnections -1', { clientConnections: -1 }, 'clientConnections', '-1'],
    ['clientConnections 2.5', { clientConnections: 2.5 }, 'clientConnections', '2.5'],
    ['maxConnections 0', { maxConnections: 0 }, 'maxConnections', '0'],
    ['maxReplicationLag "soon"', { maxReplicationLag: 'soon' }, 'maxReplicationLag', 'soon'],
    ['ferretdbUser postgres (the superuser the scripts connect as)', { ferretdbUser: 'postgres' }, 'ferretdbUser', 'postgres'],
    ['ferretdbUser equal to replicationUser', { ferretdbUser: 'replicator' }, 'ferretdbUser', 'replicator'],
    ['replicationUser postgres (the superuser)', { replicationUser: 'postgres' }, 'replicationUser', 'postgres'],
    ['ferretdbUser postgres_exporter (the metrics exporter\'s role)', { ferretdbUser: 'postgres_exporter' }, 'ferretdbUser', 'postgres_exporter'],
  ])('PostgresPrimary with %s fails when constructed, naming the prop and the value', (_what, props, prop, value) => {
    expectInvalid(errorOf(() => new PostgresPrimary(Testing.chart(), 'pg', { name: 'pg', ...props })), prop, value);
  });

  test.each([0, -1, 1.5])('ReplicationMode.synchronousQuorum(%s)', (count) => {
    expectInvalid(errorOf(() => ReplicationMode.synchronousQuorum(count)), 'replicationMode', String(count));
  });

  test.each(['Bad Name', '', '-x', 'UPPER'])('Credentials.fromSecret(%j)', (name) => {
    const message = errorOf(() => Credentials.fromSecret(name));
    expect(message).toContain('credentials');
    expect(message).toContain(JSON.stringify(name));
  });

  test('Credentials.fromGeneratedSecret with an invalid secretName', () => {
    expectInvalid(errorOf(() => Credentials.fromGeneratedSecret({ secretName: 'Bad Name' })), 'credentials', 'Bad Name');
  });

  test('wal.walKeepSize "20GB" on a 10Gi volume (WAL that is always kept would fill the disk)', () => {
    expectInvalid(errorOf(() => build({ storage: { size: '10Gi' }, wal: { walKeepSize: '20GB' } })), 'wal.walKeepSize', '20GB');
  });

  test('postgresResources.cpuRequest above its cpuLimit', () => {
    expectInvalid(errorOf(() => build({ postgresResources: { cpuRequest: '2', cpuLimit: '1' } })), 'cpu', '2');
  });

  test('ferretdbResources.cpuRequest above its cpuLimit', () => {
    expectInvalid(errorOf(() => build({ ferretdbResources: { cpuRequest: '2', cpuLimit: '500m' } })), 'cpu', '2');
  });
});

describe('a failed construction leaves nothing behind', () => {
  test.each(invalidProps)('%s: the chart still synthesizes the other cluster only', (_what, props) => {
    const chart = Testing.chart();
    new FerretDBCluster(chart, 'good', { name: 'good' });
    let thrown: Error | undefined;
    try {
      new FerretDBCluster(chart, 'bad', { name: 'bad', ...props });
    } catch (e) {
      thrown = e as Error;
    }
    if (thrown === undefined) {
      // Errors found at synth time: the chart cannot be synthesized at all, which is also safe.
      expect(() => Testing.synth(chart)).toThrow();
      return;
    }
    const objs = Testing.synth(chart);
    expect(objs.length).toBeGreaterThan(10);
    const strays = objs.filter((o) => o.metadata.labels?.['app.kubernetes.io/instance'] !== 'good' || !o.metadata.name.startsWith('good-'));
    expect(strays.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
  });

  test('every invalid prop above is rejected when the construct is created, not later at synth', () => {
    const notAtConstruction = invalidProps.filter(([, props]) => {
      try {
        new FerretDBCluster(Testing.chart(), 'db', { name: 'x', ...props });
        return true;
      } catch {
        return false;
      }
    }).map(([what]) => what);
    expect(notAtConstruction).toEqual([]);
  });
});

describe('valid edge values work', () => {
  test.each([
    ['replicas 0', { replicas: 0 }],
    ['replicas 100 (the documented maximum)', { replicas: 100 }],
    ['a quorum equal to the replica count', { replicas: 2, replicationMode: ReplicationMode.synchronousQuorum(2) }],
    ['a 40-character name', { name: 'a'.repeat(MAX_CLUSTER_NAME) }],
    ['a 1-character name', { name: 'a' }],
    ['one FerretDB pod per side', { ferretdbWriterReplicas: 1, ferretdbReaderReplicas: 1 }],
    ['maxSlotWalKeepSize just below the volume', { storage: { size: '10Gi' }, wal: { maxSlotWalKeepSize: '10239MB' } }],
    ['decimal and milli quantities', { storage: { size: '1.5Gi' }, postgresResources: { cpuRequest: '1500m', memoryRequest: '1.5Gi', memoryLimit: '2Gi' } }],
    ['wal_level logical', { parameters: { wal_level: 'logical' } }],
    ['extra preloaded libraries', { parameters: { shared_preload_libraries: 'pg_cron,pg_documentdb_core,pg_documentdb,pg_stat_statements' } }],
    ['ferretdbPoolSize 1 and maxConnections exactly the need', { ferretdbPoolSize: 1, maxConnections: 36 }],
    ['ferretdbPoolSize 1000 (the documented maximum)', { ferretdbPoolSize: 1000 }],
    ['maxReplicationLag "1TB"', { maxReplicationLag: '1TB' }],
    ['maxReplicationLag "65536B"', { maxReplicationLag: '65536B' }],
    ['allowedNamespaces of 63 characters and one letter', { allowedNamespaces: ['n'.repeat(63), 'a'] }],
  ])('%s', (_what, props: FerretDBClusterProps) => {
    const objs = synth(props);
    expect(() => validateAll(objs)).not.toThrow();
    expect(byKind(objs, 'StatefulSet')).toHaveLength(2);
  });

  test('replicas 100 gives 100 replica pods', () => {
    const objs = synth({ replicas: 100 });
    expect(byKind(objs, 'StatefulSet').find((s) => s.metadata.name === 'x-pg-replica').spec.replicas).toBe(100);
  });

  test('MAX_CLUSTER_NAME is 40', () => {
    expect(MAX_CLUSTER_NAME).toBe(40);
    expect(() => synth({ name: 'a'.repeat(MAX_CLUSTER_NAME + 1) })).toThrow(/name/);
  });
});
