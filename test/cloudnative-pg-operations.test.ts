import { Duration, Testing } from 'cdk8s';
import { CloudNativePGCluster, FerretDBCluster, FerretDBClusterProps, PostgresBackend } from '../src';
import { validateCustomResource } from './crd-schema';
import { byKind, errorOf, find, synth } from './util';

const STORE = { destinationPath: 's3://backups/ferretdb', endpointUrl: 'https://minio.example.com:9000', credentialsSecret: 'minio' };

function cnpg(props: FerretDBClusterProps = {}, options: Parameters<typeof PostgresBackend.cloudNativePG>[0] = {}): any[] {
  return synth({ ...props, backend: PostgresBackend.cloudNativePG(options) });
}

const cluster = (objs: any[]) => byKind(objs, 'Cluster')[0];

describe('shutdown: stopDelay and smartShutdownTimeout', () => {
  test('CloudNativePG\'s defaults are explicit: 1800 s to stop, of which 180 s for a smart shutdown', () => {
    const spec = cluster(cnpg()).spec;
    expect([spec.stopDelay, spec.smartShutdownTimeout]).toEqual([1800, 180]);
  });

  test('both are Durations in whole seconds, and the Cluster still validates against its CRD', () => {
    const objs = cnpg({}, { stopDelay: Duration.minutes(5), smartShutdownTimeout: Duration.seconds(30) });
    expect([cluster(objs).spec.stopDelay, cluster(objs).spec.smartShutdownTimeout]).toEqual([300, 30]);
    expect(() => validateCustomResource(cluster(objs))).not.toThrow();
  });

  test('a smartShutdownTimeout that leaves no time for the fast shutdown fails, naming it and the value', () => {
    const message = errorOf(() => cnpg({}, { stopDelay: Duration.seconds(60), smartShutdownTimeout: Duration.seconds(60) }));
    expect(message).toMatch(/^Invalid smartShutdownTimeout: "60s"\. Expected less than stopDelay \(60s\)/);
    expect(errorOf(() => cnpg({}, { stopDelay: Duration.millis(1500) }))).toMatch(/^Invalid stopDelay: "1\.5s"/);
  });
});

describe('WAL archiving in parallel: backup.walMaxParallel', () => {
  const store = (objs: any[]) => find(objs, 'ObjectStore', 'x-pg-backup');

  test('one WAL file at a time by default, as the plugin does', () => {
    expect(store(cnpg({}, { backup: { objectStore: STORE } })).spec.configuration.wal).toEqual({ compression: 'gzip', maxParallel: 1 });
  });

  test('walMaxParallel reaches the ObjectStore, which still validates against its CRD', () => {
    const objs = cnpg({}, { backup: { objectStore: STORE, walMaxParallel: 8 } });
    expect(store(objs).spec.configuration.wal.maxParallel).toBe(8);
    expect(() => validateCustomResource(store(objs))).not.toThrow();
  });

  test.each([0, 1.5, 65])('walMaxParallel %s fails, naming backup.walMaxParallel', (value) => {
    expect(errorOf(() => cnpg({}, { backup: { objectStore: STORE, walMaxParallel: value } }))).toMatch(/^Invalid backup\.walMaxParallel: /);
  });
});

describe('a separate WAL volume: walStorage', () => {
  test('none by default: the WAL is on the data volume, whose size bounds it', () => {
    const spec = cluster(cnpg({ storage: { size: '20Gi' } })).spec;
    expect(spec.walStorage).toBeUndefined();
    expect(spec.postgresql.parameters.max_slot_wal_keep_size).toBe('5120MB');
  });

  test('walStorage becomes the Cluster\'s walStorage, and the WAL bounds follow its size (a quarter of it), not the data volume\'s', () => {
    const objs = cnpg({ storage: { size: '100Gi' } }, { walStorage: { size: '8Gi', storageClassName: 'fast' } });
    const spec = cluster(objs).spec;
    expect(spec.walStorage).toEqual({ size: '8Gi', storageClass: 'fast' });
    expect(spec.storage.size).toBe('100Gi');
    expect(spec.postgresql.parameters.max_slot_wal_keep_size).toBe('2048MB');
    expect(() => validateCustomResource(cluster(objs))).not.toThrow();
  });

  test('WAL settings are checked against the WAL volume: a walKeepSize that fits the data volume but not the WAL volume fails', () => {
    expect(errorOf(() => cnpg({ storage: { size: '100Gi' }, wal: { walKeepSize: '10GB' } }, { walStorage: { size: '8Gi' } })))
      .toMatch(/^Invalid wal\.walKeepSize: "10GB"/);
    expect(errorOf(() => cnpg({}, { walStorage: { size: 'big' } }))).toMatch(/^Invalid walStorage\.size: "big"/);
  });
});

describe('an on-demand backup: addBackup', () => {
  const withBackups = () => new CloudNativePGCluster(Testing.chart(), 'pg', { name: 'pg', backup: { objectStore: STORE } });

  test('a Backup of this cluster through the Barman Cloud plugin, named <name>-<suffix>, valid against the Backup CRD', () => {
    const pg = withBackups();
    pg.addBackup('before-upgrade');
    const backup = find(Testing.synth(pg.node.scope as any), 'Backup', 'pg-before-upgrade');
    expect(backup.spec).toEqual({ cluster: { name: 'pg' }, method: 'plugin', pluginConfiguration: { name: 'barman-cloud.cloudnative-pg.io' } });
    expect(backup.metadata.labels['app.kubernetes.io/component']).toBe('backup');
    expect(() => validateCustomResource(backup)).not.toThrow();
  });

  test('two suffixes give two Backups; none is synthesized unless asked for', () => {
    const pg = withBackups();
    expect(byKind(Testing.synth(pg.node.scope as any), 'Backup')).toEqual([]);
    pg.addBackup('a');
    pg.addBackup('b');
    expect(byKind(Testing.synth(pg.node.scope as any), 'Backup').map((b) => b.metadata.name)).toEqual(['pg-a', 'pg-b']);
  });

  test('through FerretDBCluster.cloudNativePG', () => {
    const chart = Testing.chart();
    const db = new FerretDBCluster(chart, 'db', { name: 'x', backend: PostgresBackend.cloudNativePG({ backup: { objectStore: STORE } }) });
    db.cloudNativePG!.addBackup('now');
    expect(find(Testing.synth(chart), 'Backup', 'x-pg-now').spec.cluster).toEqual({ name: 'x-pg' });
  });

  test('without backup settings it fails, naming addBackup', () => {
    const pg = new CloudNativePGCluster(Testing.chart(), 'pg', { name: 'pg' });
    expect(errorOf(() => pg.addBackup('now'))).toMatch(/^Invalid addBackup: "now"\. Expected a cluster with backup settings/);
  });

  test.each(['', 'Now', '-now', 'now-', 'a_b', 'x'.repeat(61)])('suffix %j fails, naming it', (suffix) => {
    expect(errorOf(() => withBackups().addBackup(suffix))).toMatch(/^Invalid addBackup suffix: /);
  });
});
