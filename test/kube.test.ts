/* eslint-disable @typescript-eslint/no-require-imports -- jest.isolateModules loads the library a second time, with kube() replaced, through require() */
import { App, Chart, Lazy, Testing } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { kube } from '../src/private/kube';

/*
 * src/private/kube.ts renders the library's objects as plain ApiObjects (the typed classes of
 * cdk8s-plus rebuild every struct at synth). These tests say that the output is what the typed
 * classes would have rendered: for hand-written objects with every conversion it makes, and for
 * every object of the examples and of clusters with most options on.
 */

/** `build(app)` synthesized to YAML, with kube() as shipped or replaced by the typed classes. */
function synthYaml(typed: boolean, build: (lib: any, app: App) => void): string {
  let yaml = '';
  jest.isolateModules(() => {
    if (typed) {
      jest.doMock('../src/private/kube', () => ({
        kube: (type: any, scope: any, id: string, props: any) => new type(scope, id, props),
      }));
    }
    const lib = require('../src');
    const { App: IsolatedApp } = require('cdk8s');
    const app = new IsolatedApp();
    build(lib, app);
    yaml = app.synthYaml();
  });
  jest.dontMock('../src/private/kube');
  return yaml;
}

function examples(lib: any, app: App): void {
  const { Chart: IsolatedChart } = require('cdk8s');
  const { MinimalChart } = require('../examples/minimal');
  const { ProductionChart } = require('../examples/production');
  const { CloudNativePGChart } = require('../examples/cloudnative-pg');
  new MinimalChart(app, 'minimal');
  new ProductionChart(app, 'production', { namespace: 'orders' });
  new CloudNativePGChart(app, 'cloudnative-pg', { namespace: 'catalog' });
  // Labels whose keys are typed prop names that the API spells differently: never renamed.
  const odd = { clusterIp: 'a', downwardApi: 'b', hostIpc: 'c' };
  const chart = new IsolatedChart(app, 'options', { namespace: 'ns1' });
  new lib.FerretDBCluster(chart, 'tls', {
    name: 'tls',
    replicas: 3,
    replicationMode: lib.ReplicationMode.synchronousQuorum(2),
    postgresTls: lib.PostgresTls.fromSecret('pg-tls'),
    ferretdbTls: lib.FerretDBTls.fromSecret('f-tls'),
    monitoring: { podMonitor: true, prometheusRule: true, dashboard: true, labels: odd },
    labels: odd,
    credentials: lib.Credentials.fromSecret('s1'),
    currentPrimary: 'tls-pg-replica-1',
    metricsScrapers: [{ podSelector: { matchLabels: odd } }],
    scheduling: { nodeSelector: odd, tolerations: [{ key: 'k', operator: 'Exists' }] },
    postgresResources: { cpuRequest: '1500m', memoryRequest: '2Gi', memoryLimit: '2Gi', cpuLimit: '2' },
  });
  new lib.FerretDBCluster(chart, 'none', { replicas: 0, networkPolicy: false, monitoring: {} });
  new lib.FerretDBCluster(chart, 'cnpg', {
    backend: lib.PostgresBackend.cloudNativePG(),
    monitoring: { podMonitor: true },
    metricsScrapers: [{ podSelector: {} }],
    labels: odd,
    ferretdbTls: lib.FerretDBTls.certManager({ issuerName: 'issuer' }),
  });
}

describe('kube(): the typed classes\' output, without their synth cost', () => {
  test('the examples and clusters with most options synthesize byte-identical YAML either way', () => {
    const typed = synthYaml(true, examples);
    const plain = synthYaml(false, examples);
    expect(typed.length).toBeGreaterThan(400_000);
    expect(plain).toEqual(typed);
  });

  test('API names, quantities, int-or-strings and lazy values as the typed classes render them; user keys kept', () => {
    const odd = { clusterIp: 'x', downwardApi: 'y', scaleIo: 'z' };
    const service = (): k8s.KubeServiceProps => ({
      metadata: { name: 's', labels: odd, annotations: odd },
      spec: {
        clusterIp: 'None',
        selector: odd,
        ports: [{ port: 5432, targetPort: k8s.IntOrString.fromString('postgresql') }],
      },
    });
    const pod = (): k8s.KubePodProps => ({
      metadata: { name: 'p' },
      spec: {
        hostIpc: false,
        setHostnameAsFqdn: true,
        nodeSelector: odd,
        containers: [{
          name: 'c',
          resources: { requests: { cpu: k8s.Quantity.fromString('250m') }, limits: { memory: k8s.Quantity.fromNumber(1024) } },
          livenessProbe: { httpGet: { port: k8s.IntOrString.fromNumber(8080) } },
        }],
        volumes: [
          { name: 'd', downwardApi: { items: [{ path: 'l', fieldRef: { fieldPath: 'metadata.labels' } }] } },
          { name: 'p', projected: { sources: [{ downwardApi: { items: [{ path: 'n', fieldRef: { fieldPath: 'metadata.name' } }] } }] } },
        ],
      },
    });
    const budget = (): k8s.KubePodDisruptionBudgetProps => ({
      metadata: { name: 'b' },
      spec: {
        minAvailable: Lazy.any({ produce: () => k8s.IntOrString.fromNumber(1) }),
        selector: { matchLabels: Lazy.any({ produce: () => odd }) },
      },
    });
    const render = (make: (chart: Chart) => void): unknown[] => {
      const chart = Testing.chart();
      make(chart);
      return Testing.synth(chart);
    };
    const typed = render((c) => {
      new k8s.KubeService(c, 's', service());
      new k8s.KubePod(c, 'p', pod());
      new k8s.KubePodDisruptionBudget(c, 'b', budget());
    });
    const plain = render((c) => {
      kube(k8s.KubeService, c, 's', service());
      kube(k8s.KubePod, c, 'p', pod());
      kube(k8s.KubePodDisruptionBudget, c, 'b', budget());
    });
    expect(plain).toEqual(typed);
    // What the conversions are for, spelled out.
    const [svc, p, pdb] = plain as any[];
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.selector).toEqual(odd);
    expect(svc.metadata.labels).toEqual(odd);
    expect(svc.spec.ports[0].targetPort).toBe('postgresql');
    expect(p.spec.hostIPC).toBe(false);
    expect(p.spec.setHostnameAsFQDN).toBe(true);
    expect(p.spec.nodeSelector).toEqual(odd);
    expect(p.spec.containers[0].resources).toEqual({ requests: { cpu: '250m' }, limits: { memory: 1024 } });
    expect(p.spec.containers[0].livenessProbe.httpGet.port).toBe(8080);
    expect(p.spec.volumes[0].downwardAPI.items[0].path).toBe('l');
    expect(p.spec.volumes[1].projected.sources[0].downwardAPI.items[0].path).toBe('n');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(odd);
  });

  test('the props given are not changed', () => {
    const props: k8s.KubeServiceProps = { metadata: { name: 's' }, spec: { clusterIp: 'None', ports: [{ port: 1, targetPort: k8s.IntOrString.fromNumber(2) }] } };
    const before = JSON.stringify(props);
    kube(k8s.KubeService, Testing.chart(), 's', props);
    expect(JSON.stringify(props)).toBe(before);
    expect(props.spec!.ports![0].targetPort).toBeInstanceOf(k8s.IntOrString);
  });
});
