import { App, Chart, Testing } from 'cdk8s';
import { MinimalChart } from '../examples/minimal';
import { ProductionChart } from '../examples/production';
import { Credentials, FerretDBCluster, PostgresPrimary, PostgresTls, ReplicationMode } from '../src';
import { byKind, synth, validateAll } from './util';

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function exampleObjects(): { [name: string]: any[] } {
  return {
    minimal: Testing.synth(new MinimalChart(Testing.app(), 'minimal')),
    production: Testing.synth(new ProductionChart(Testing.app(), 'production', { namespace: 'orders' })),
  };
}

/** A PostgresPrimary without FerretDB or replicas. */
function primaryAlone(): any[] {
  const chart = Testing.chart();
  new PostgresPrimary(chart, 'pg', { name: 'pg' });
  return Testing.synth(chart);
}

/** Default, 0-replica, sync-quorum, promoted and fully configured clusters, a lone PostgresPrimary and both example charts. */
function allVariants(): [string, any[]][] {
  const examples = exampleObjects();
  return [
    ['a default cluster', synth()],
    ['a cluster with 0 replicas', synth({ replicas: 0 })],
    ['a synchronous-quorum cluster', synth({ replicas: 3, replicationMode: ReplicationMode.synchronousQuorum(2) })],
    ['a promoted cluster (currentPrimary x-pg-replica-1)', synth({ currentPrimary: 'x-pg-replica-1' })],
    ['a cluster with every day-two prop', synth({
      credentials: Credentials.fromSecret('x-secret'),
      allowedNamespaces: ['web', 'api'],
      ferretdbPoolSize: 30,
      maxConnections: 300,
      maxReplicationLag: '1GB',
      scheduling: { nodeSelector: { 'node-role.example.com/database': 'true' } },
    })],
    ['a PostgresPrimary alone', primaryAlone()],
    // The cert-manager Certificate of PostgresTls.certManager is validated in tls.test.ts.
    ['a cluster with PostgreSQL TLS from a Secret', synth({ postgresTls: PostgresTls.fromSecret('x-tls'), monitoring: {} })],
    ['examples/minimal.ts', examples.minimal],
    ['examples/production.ts', examples.production],
  ];
}

/** Every name the objects give to something Kubernetes creates: objects, StatefulSet pods, PVCs. */
function expectValidNames(objs: any[]): void {
  for (const o of objs) {
    const name: string = o.metadata.name;
    const what = `${o.kind} ${name}`;
    expect({ what, valid: DNS_1123_LABEL.test(name) && name.length <= 63 }).toEqual({ what, valid: true });
    if (o.kind === 'Service') {
      expect({ what, dns1035: DNS_1035_LABEL.test(name) }).toEqual({ what, dns1035: true });
    }
    for (const [key, value] of Object.entries<string>({ ...o.metadata.labels, ...o.spec?.template?.metadata?.labels })) {
      expect({ what, key, value, valid: LABEL_VALUE.test(value) && value.length <= 63 }).toEqual({ what, key, value, valid: true });
    }
    if (o.kind === 'StatefulSet') {
      // The controller-revision-hash label is `<name>-<10 characters>`: 52 characters at most.
      expect({ what, length: name.length <= 52 }).toEqual({ what, length: true });
      const lastPod = `${name}-${Math.max(0, (o.spec.replicas ?? 1) - 1)}`;
      for (const claim of o.spec.volumeClaimTemplates ?? []) {
        const pvc = `${claim.metadata.name}-${lastPod}`;
        expect({ pvc, valid: DNS_1123_LABEL.test(pvc) && pvc.length <= 63 }).toEqual({ pvc, valid: true });
      }
    }
  }
}

describe('every object validates against the Kubernetes schema', () => {
  test.each(allVariants())('%s', (_what, objs) => {
    expect(objs.length).toBeGreaterThan(10);
    expect(() => validateAll(objs)).not.toThrow();
  });

  test('validateAll rejects an invalid object, an unknown kind and a misspelt volume field', () => {
    const objs = synth();
    const broken = JSON.parse(JSON.stringify(objs));
    byKind(broken, 'StatefulSet')[0].spec.replicas = 'one';
    expect(() => validateAll(broken)).toThrow(/StatefulSet/);
    // kubernetes-models does not catch unknown fields: `downwardApi` (the TypeScript name) would be dropped by the API server.
    const misspelt = JSON.parse(JSON.stringify(objs));
    const projected = byKind(misspelt, 'StatefulSet')[0].spec.template.spec.volumes.find((v: any) => v.projected).projected;
    const source = projected.sources.find((src: any) => src.downwardAPI);
    source.downwardApi = source.downwardAPI;
    delete source.downwardAPI;
    expect(() => validateAll(misspelt)).toThrow(/unexpected field "downwardApi"/);
    expect(() => validateAll([...objs, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } }])).toThrow(/unknown/);
  });
});

describe('names', () => {
  test.each(allVariants())('every name of %s is a valid DNS-1123 label (Services DNS-1035), as are the label values', (_what, objs) => {
    expectValidNames(objs);
  });

  test.each([
    ['a 200-character id', 'i'.repeat(200)],
    ['an id with upper case and an underscore', 'My_Cluster'],
    ['an id with a dot', 'orders.db'],
    ['an id starting with a digit', '0db'],
    ['an id of dashes and digits', '--12--'],
  ])('names derived from %s in a chart with a long name stay valid', (_what, id) => {
    const app = Testing.app();
    const chart = new Chart(app, 'c'.repeat(120));
    const cluster = new FerretDBCluster(chart, id);
    const objs = Testing.synth(chart);
    expect(cluster.name.length).toBeLessThanOrEqual(40);
    expect(DNS_1035_LABEL.test(cluster.name)).toBe(true);
    expect(() => validateAll(objs)).not.toThrow();
    expectValidNames(objs);
    for (const sts of byKind(objs, 'StatefulSet')) {
      expect(sts.metadata.name.length).toBeLessThanOrEqual(52);
    }
  });

  test('two clusters with long ids that differ only at the end get different names', () => {
    const chart = new Chart(Testing.app(), 'c'.repeat(120));
    const a = new FerretDBCluster(chart, 'i'.repeat(199) + 'a');
    const b = new FerretDBCluster(chart, 'i'.repeat(199) + 'b');
    expect(a.name).not.toEqual(b.name);
    const names = Testing.synth(chart).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(names).size).toBe(names.length);
  });

  test('no two objects of one cluster share a kind and name', () => {
    for (const [, objs] of allVariants()) {
      const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
      expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    }
  });
});

describe('synthesis is deterministic', () => {
  function buildApp(): App {
    const app = Testing.app();
    new MinimalChart(app, 'minimal');
    new ProductionChart(app, 'production', { namespace: 'orders' });
    const chart = new Chart(app, 'default');
    new FerretDBCluster(chart, 'db');
    new FerretDBCluster(chart, 'sync', { replicas: 3, replicationMode: ReplicationMode.synchronousQuorum(2) });
    return app;
  }

  test('two synths of the same app give byte-identical JSON', () => {
    const json = () => JSON.stringify(buildApp().charts.map((c) => Testing.synth(c)));
    const first = json();
    expect(first.length).toBeGreaterThan(1000);
    expect(json()).toEqual(first);
  });

  test('two synths of the same app give byte-identical YAML', () => {
    const first = buildApp().synthYaml();
    expect(first).toContain('kind: StatefulSet');
    expect(buildApp().synthYaml()).toEqual(first);
  });

  test('synthesizing one app twice gives the same YAML', () => {
    const app = buildApp();
    expect(app.synthYaml()).toEqual(app.synthYaml());
  });
});
