import { Duration } from 'cdk8s';
import { FerretDBClusterProps, PostgresBackend } from '../src';
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
