import { Testing } from 'cdk8s';
import { CloudNativePGCluster, FerretDBClusterProps, PostgresBackend } from '../src';
import { validateCustomResource } from './crd-schema';
import { byKind, errorOf, find, synth } from './util';

const SCRAPERS = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];

function cnpg(props: FerretDBClusterProps = {}, options: Parameters<typeof PostgresBackend.cloudNativePG>[0] = {}): any[] {
  return synth({ ...props, backend: PostgresBackend.cloudNativePG(options) });
}

/** The ports each ingress rule of a NetworkPolicy admits, with its peers. */
function rulesFor(policy: any, port: number): any[] {
  return policy.spec.ingress.filter((r: any) => r.ports.some((p: any) => p.port === port)).map((r: any) => r.from);
}

describe('PodMonitor labels', () => {
  const objs = cnpg({ monitoring: { podMonitor: true, labels: { release: 'kube-prometheus-stack' } }, metricsScrapers: SCRAPERS });

  test('monitoring.labels reach both PodMonitors, the instances\' and FerretDB\'s', () => {
    const monitors = byKind(objs, 'PodMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['x-ferretdb', 'x-pg']);
    for (const m of monitors) expect(m.metadata.labels.release).toBe('kube-prometheus-stack');
    for (const m of monitors) expect(() => validateCustomResource(m)).not.toThrow();
  });

  test('the library\'s own metadata labels win over monitoring.labels of the same key', () => {
    const clash = cnpg({ monitoring: { podMonitor: true, labels: { 'app.kubernetes.io/component': 'mine' } }, metricsScrapers: SCRAPERS });
    expect(find(clash, 'PodMonitor', 'x-pg').metadata.labels['app.kubernetes.io/component']).toBe('metrics');
  });

  test('a standalone CloudNativePGCluster takes podMonitorLabels', () => {
    const chart = Testing.chart();
    new CloudNativePGCluster(chart, 'pg', { name: 'pg', podMonitor: true, metricsScrapers: SCRAPERS, podMonitorLabels: { release: 'prom' } });
    expect(find(Testing.synth(chart), 'PodMonitor', 'pg').metadata.labels.release).toBe('prom');
  });
});

describe('podMonitor and the NetworkPolicy', () => {
  test('podMonitor without metricsScrapers fails at synth time, naming metricsScrapers', () => {
    const message = errorOf(() => cnpg({ monitoring: { podMonitor: true } }));
    expect(message).toMatch(/^Invalid metricsScrapers: undefined\. .*9187.*8088/);
    expect(errorOf(() => cnpg({ metricsScrapers: [] }, { podMonitor: true }))).toMatch(/^Invalid metricsScrapers: \[\]/);
    expect(errorOf(() => new CloudNativePGCluster(Testing.chart(), 'pg', { podMonitor: true }))).toMatch(/^Invalid metricsScrapers/);
  });

  test('podMonitor without metricsScrapers is accepted when there is no NetworkPolicy (nothing to admit)', () => {
    const objs = cnpg({ monitoring: { podMonitor: true }, networkPolicy: false });
    expect(byKind(objs, 'PodMonitor')).toHaveLength(2);
    expect(byKind(objs, 'NetworkPolicy')).toEqual([]);
  });

  test('with podMonitor and metricsScrapers, the scrapers reach 9187 on the instances and 8088 on FerretDB', () => {
    const objs = cnpg({ monitoring: { podMonitor: true }, metricsScrapers: SCRAPERS });
    expect(rulesFor(find(objs, 'NetworkPolicy', 'x-pg-postgresql'), 9187)).toEqual([SCRAPERS]);
    const ferretdbPolicies = byKind(objs, 'NetworkPolicy').filter((p) => p.metadata.name !== 'x-pg-postgresql');
    expect(ferretdbPolicies.flatMap((p) => rulesFor(p, 8088))).toContainEqual(SCRAPERS);
  });
});

describe('the status port (8000) and kubectl cnpg status', () => {
  const API_SERVER = [{ ipBlock: { cidr: '10.0.0.10/32' } }];

  test('only the cluster\'s pods and the operator reach 8000 by default', () => {
    const from = rulesFor(find(cnpg(), 'NetworkPolicy', 'x-pg-postgresql'), 8000);
    expect(from).toEqual([
      [{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'x-pg' } } }],
      [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'cnpg-system' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'cloudnative-pg' } } }],
    ]);
  });

  test('statusClients (the API server\'s addresses) reach 8000 and nothing else', () => {
    const policy = find(cnpg({}, { statusClients: API_SERVER }), 'NetworkPolicy', 'x-pg-postgresql');
    const rule = policy.spec.ingress.find((r: any) => r.from === API_SERVER || JSON.stringify(r.from) === JSON.stringify(API_SERVER));
    expect(rule).toEqual({ from: API_SERVER, ports: [{ protocol: 'TCP', port: 8000 }] });
  });
});
