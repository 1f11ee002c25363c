import { Duration } from 'cdk8s';
import { FerretDBClusterProps, PostgresBackend } from '../src';
import { validateCustomResource } from './crd-schema';
import { byKind, errorOf, synth } from './util';

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
