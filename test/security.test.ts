import { Testing } from 'cdk8s';
import { Credentials, FerretDBCluster, ReplicationMode } from '../src';
import {
  byKind, containers, find, podSpecs, podsSelectedBy, podTemplates, quantity, synth, synthCluster,
} from './util';

const RESTRICTED_VOLUME_TYPES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

const variants: [string, any[]][] = [
  ['default', synth()],
  ['0 replicas', synth({ replicas: 0 })],
  ['existing Secret, sync quorum', synth({ credentials: Credentials.fromSecret('x'), replicationMode: ReplicationMode.synchronousQuorum(1) })],
];

describe('Pod Security "restricted"', () => {
  test.each(variants)('every pod template meets it (%s)', (_what, objs) => {
    const pods = podSpecs(objs);
    expect(pods.length).toBeGreaterThanOrEqual(4);
    for (const { owner, spec } of pods) {
      const psc = spec.securityContext ?? {};
      expect({ owner, hostNetwork: spec.hostNetwork, hostPID: spec.hostPID, hostIPC: spec.hostIPC })
        .toEqual({ owner, hostNetwork: undefined, hostPID: undefined, hostIPC: undefined });
      for (const v of spec.volumes ?? []) {
        const types = Object.keys(v).filter((k) => k !== 'name');
        const allowed = types.length === 1 && RESTRICTED_VOLUME_TYPES.includes(types[0]);
        expect({ owner, volume: v.name, types, allowed }).toEqual({ owner, volume: v.name, types, allowed: true });
      }
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        const sc = c.securityContext ?? {};
        const where = `${owner}/${c.name}`;
        expect({ where, runAsNonRoot: sc.runAsNonRoot ?? psc.runAsNonRoot }).toEqual({ where, runAsNonRoot: true });
        expect({ where, uid: (sc.runAsUser ?? psc.runAsUser) > 0 }).toEqual({ where, uid: true });
        expect({ where, allowPrivilegeEscalation: sc.allowPrivilegeEscalation }).toEqual({ where, allowPrivilegeEscalation: false });
        expect({ where, drop: sc.capabilities?.drop, add: sc.capabilities?.add }).toEqual({ where, drop: ['ALL'], add: undefined });
        expect({ where, seccomp: (sc.seccompProfile ?? psc.seccompProfile)?.type }).toEqual({ where, seccomp: 'RuntimeDefault' });
        expect({ where, privileged: sc.privileged === true }).toEqual({ where, privileged: false });
        expect({ where, readOnlyRootFilesystem: sc.readOnlyRootFilesystem }).toEqual({ where, readOnlyRootFilesystem: true });
        for (const p of c.ports ?? []) expect({ where, hostPort: p.hostPort }).toEqual({ where, hostPort: undefined });
      }
    }
  });

  test('PostgreSQL pods run as uid 999, FerretDB pods as uid 1000', () => {
    const objs = synth();
    for (const sts of byKind(objs, 'StatefulSet')) {
      const psc = sts.spec.template.spec.securityContext;
      expect([psc.runAsUser, psc.runAsGroup, psc.fsGroup]).toEqual([999, 999, 999]);
      for (const c of sts.spec.template.spec.containers) expect(c.securityContext.runAsUser ?? psc.runAsUser).toBe(999);
    }
    for (const d of byKind(objs, 'Deployment')) {
      const psc = d.spec.template.spec.securityContext;
      expect([psc.runAsUser, psc.runAsGroup]).toEqual([1000, 1000]);
      for (const c of d.spec.template.spec.containers) expect(c.securityContext.runAsUser ?? psc.runAsUser).toBe(1000);
    }
  });

  test('writable paths are volumes: PGDATA, the socket directory and /tmp', () => {
    const objs = synth();
    for (const { owner, spec } of podSpecs(objs)) {
      for (const c of spec.containers) {
        const mounts = c.volumeMounts.map((m: any) => m.mountPath);
        expect({ owner, container: c.name, tmp: mounts.includes('/tmp') }).toEqual({ owner, container: c.name, tmp: true });
      }
    }
    const postgres = find(objs, 'StatefulSet', 'x-pg-primary').spec.template.spec.containers.find((c: any) => c.name === 'postgres');
    const pgdata = postgres.env.find((e: any) => e.name === 'PGDATA').value;
    expect(postgres.volumeMounts.some((m: any) => !m.readOnly && pgdata.startsWith(m.mountPath + '/'))).toBe(true);
    expect(postgres.volumeMounts.some((m: any) => !m.readOnly && m.mountPath === '/var/run/postgresql')).toBe(true);
  });
});

describe('service account tokens and RBAC', () => {
  const objs = synth();

  test('no pod mounts a service account token except the bootstrap Job\'s', () => {
    for (const { owner, kind, spec } of podSpecs(objs)) {
      expect({ owner, automount: spec.automountServiceAccountToken }).toEqual({ owner, automount: kind === 'Job' });
    }
    for (const sa of byKind(objs, 'ServiceAccount')) expect(sa.automountServiceAccountToken).toBe(false);
  });

  test('only the bootstrap Job has a service account, whose Role may only create Secrets', () => {
    const job = byKind(objs, 'Job');
    expect(job).toHaveLength(1);
    const sa = job[0].spec.template.spec.serviceAccountName;
    for (const { kind, spec } of podSpecs(objs)) {
      if (kind !== 'Job') expect(spec.serviceAccountName).toBeUndefined();
    }
    const bindings = byKind(objs, 'RoleBinding').filter((b) => b.subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === sa));
    expect(bindings).toHaveLength(1);
    expect(bindings[0].roleRef.kind).toBe('Role');
    const role = find(objs, 'Role', bindings[0].roleRef.name);
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }]);
    expect(byKind(objs, 'ClusterRole')).toEqual([]);
    expect(byKind(objs, 'ClusterRoleBinding')).toEqual([]);
  });
});

describe('credentials', () => {
  test('no Secret and no plaintext password is synthesized', () => {
    for (const [, objs] of variants) {
      expect(byKind(objs, 'Secret')).toEqual([]);
      for (const { owner, container } of containers(objs)) {
        for (const e of container.env ?? []) {
          if (/PASS|SECRET_KEY|TOKEN/i.test(e.name)) {
            expect({ owner, env: e.name, value: e.value }).toEqual({ owner, env: e.name, value: undefined });
          }
          if (typeof e.value === 'string') {
            // No userinfo password in a URL or a conninfo.
            expect(e.value).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@/);
            expect(e.value).not.toMatch(/password\s*=/i);
          }
        }
      }
      const text = JSON.stringify(objs);
      expect(text).not.toMatch(/"stringData"/);
      expect(text).not.toMatch(/password\s*=\s*[^\s'"$]/i);
    }
  });

  test('the generated Secret is referenced by every pod that needs it', () => {
    const { cluster, objs } = synthCluster();
    expect(cluster.secretName).toBe('x-credentials');
    for (const sts of byKind(objs, 'StatefulSet')) {
      expect(sts.spec.template.spec.volumes.find((v: any) => v.secret).secret.secretName).toBe(cluster.secretName);
    }
    for (const { container } of containers(objs).filter((c) => c.kind === 'Deployment')) {
      expect(container.env.find((e: any) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef.name).toBe(cluster.secretName);
    }
  });

  test('with Credentials.fromSecret no Job, Role or ServiceAccount is synthesized and pods reference that Secret', () => {
    const { cluster, objs } = synthCluster({ credentials: Credentials.fromSecret('x') });
    for (const kind of ['Job', 'Role', 'RoleBinding', 'ServiceAccount', 'Secret']) expect(byKind(objs, kind)).toEqual([]);
    expect(cluster.secretName).toBe('x');
    const refs: string[] = [];
    for (const { spec } of podSpecs(objs)) {
      for (const v of spec.volumes ?? []) if (v.secret) refs.push(v.secret.secretName);
      for (const c of spec.containers) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) refs.push(e.valueFrom.secretKeyRef.name);
      }
    }
    expect(refs.length).toBe(4);
    expect(new Set(refs)).toEqual(new Set(['x']));
  });

  test('Credentials.fromGeneratedSecret() given explicitly names the Secret like the default (<cluster name>-credentials)', () => {
    const { cluster, objs } = synthCluster({ credentials: Credentials.fromGeneratedSecret() });
    expect(cluster.secretName).toBe('x-credentials');
    const job = byKind(objs, 'Job')[0];
    expect(job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'SECRET_NAME').value).toBe('x-credentials');
  });

  test('Credentials.fromGeneratedSecret({ secretName }) makes the Job create that Secret and the pods use it', () => {
    const { cluster, objs } = synthCluster({ credentials: Credentials.fromGeneratedSecret({ secretName: 'my.db-passwords' }) });
    expect(cluster.secretName).toBe('my.db-passwords');
    const job = byKind(objs, 'Job')[0];
    expect(job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'SECRET_NAME').value).toBe('my.db-passwords');
    for (const sts of byKind(objs, 'StatefulSet')) {
      expect(sts.spec.template.spec.volumes.find((v: any) => v.secret).secret.secretName).toBe('my.db-passwords');
    }
  });
});

describe('resources', () => {
  test('every container requests cpu and memory and has a memory limit not below its request', () => {
    for (const [, objs] of variants) {
      for (const { owner, container } of containers(objs)) {
        const r = container.resources ?? {};
        const where = `${owner}/${container.name}`;
        expect({ where, cpu: r.requests?.cpu !== undefined, memory: r.requests?.memory !== undefined, limit: r.limits?.memory !== undefined })
          .toEqual({ where, cpu: true, memory: true, limit: true });
        expect(quantity(r.limits.memory)).toBeGreaterThanOrEqual(quantity(r.requests.memory));
      }
    }
  });

  test('postgresResources and ferretdbResources override the defaults', () => {
    const objs = synth({
      postgresResources: { cpuRequest: '2', cpuLimit: '4', memoryRequest: '4Gi', memoryLimit: '8Gi' },
      ferretdbResources: { cpuRequest: '500m', memoryRequest: '256Mi', memoryLimit: '1Gi' },
    });
    for (const { container } of containers(objs).filter((c) => c.container.name === 'postgres')) {
      expect(container.resources).toEqual({ requests: { cpu: '2', memory: '4Gi' }, limits: { cpu: '4', memory: '8Gi' } });
    }
    for (const { container } of containers(objs).filter((c) => c.container.name === 'ferretdb')) {
      expect(container.resources).toEqual({ requests: { cpu: '500m', memory: '256Mi' }, limits: { memory: '1Gi' } });
    }
    // The defaults differ, so the override is visible.
    const defaults = synth();
    const pg = containers(defaults).find((c) => c.container.name === 'postgres')!.container.resources;
    expect(pg.requests.memory).not.toBe('4Gi');
  });

  test('a partial override keeps the other defaults', () => {
    const objs = synth({ postgresResources: { cpuRequest: '1' } });
    const pg = containers(objs).find((c) => c.container.name === 'postgres')!.container.resources;
    const defaults = containers(synth()).find((c) => c.container.name === 'postgres')!.container.resources;
    expect(pg.requests.cpu).toBe('1');
    expect(pg.requests.memory).toBe(defaults.requests.memory);
    expect(pg.limits.memory).toBe(defaults.limits.memory);
  });

  test.each([
    ['postgresResources', 'postgres', '2Gi'],
    ['ferretdbResources', 'ferretdb', '1Gi'],
  ])('%s.memoryRequest above the default memory limit never yields a request above the limit', (prop, name, request) => {
    let objs: any[] | undefined;
    try {
      objs = synth({ [prop]: { memoryRequest: request } });
    } catch (e) {
      // Rejecting it is fine too, when the message names the prop.
      expect((e as Error).message).toContain('memoryRequest');
      return;
    }
    for (const { container } of containers(objs).filter((c) => c.container.name === name)) {
      expect(quantity(container.resources.limits.memory)).toBeGreaterThanOrEqual(quantity(container.resources.requests.memory));
    }
  });
});

describe('NetworkPolicies', () => {
  function policies(objs: any[]) {
    const nps = byKind(objs, 'NetworkPolicy');
    const ports = (np: any) => np.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port));
    return {
      ferretdb: nps.find((np) => ports(np).includes(27017)),
      postgres: nps.find((np) => ports(np).includes(5432)),
      all: nps,
    };
  }

  test('the FerretDB policy selects exactly the FerretDB pods and only opens 27017 to every pod of the namespace by default', () => {
    const objs = synth();
    const { ferretdb, all } = policies(objs);
    expect(all).toHaveLength(2);
    expect(podsSelectedBy(ferretdb.spec.podSelector, podTemplates(objs))).toEqual(['Deployment/x-ferretdb-rw', 'Deployment/x-ferretdb-ro']);
    expect(ferretdb.spec.policyTypes).toEqual(['Ingress']);
    expect(ferretdb.spec.ingress).toEqual([{ from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: 27017 }] }]);
  });

  test('allowedClients replace who may reach 27017', () => {
    const allowedClients = [{ podSelector: { matchLabels: { role: 'api' } } }, { namespaceSelector: { matchLabels: { team: 'web' } } }];
    const { ferretdb } = policies(synth({ allowedClients }));
    expect(ferretdb.spec.ingress).toEqual([{ from: allowedClients, ports: [{ protocol: 'TCP', port: 27017 }] }]);
  });

  test('allowedClients: [] does not open 27017 to every source (an empty `from` allows all)', () => {
    let objs: any[];
    try {
      objs = synth({ allowedClients: [] });
    } catch (e) {
      expect((e as Error).message).toContain('allowedClients');
      return;
    }
    for (const rule of policies(objs).ferretdb.spec.ingress) {
      expect(rule.from === undefined || rule.from.length === 0).toBe(false);
    }
  });

  test('8088 is opened only to metricsScrapers, and only when some are given', () => {
    const scrapers = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    for (const props of [{}, { metricsScrapers: [] }]) {
      const { ferretdb } = policies(synth(props));
      expect(ferretdb.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).toEqual([27017]);
    }
    const { ferretdb } = policies(synth({ metricsScrapers: scrapers }));
    const metrics = ferretdb.spec.ingress.filter((r: any) => r.ports.some((p: any) => p.port === 8088));
    expect(metrics).toEqual([{ from: scrapers, ports: [{ protocol: 'TCP', port: 8088 }] }]);
  });

  test('PostgreSQL pods accept 5432 only from this cluster\'s PostgreSQL pods and from the FerretDB pods', () => {
    const chart = Testing.chart();
    new FerretDBCluster(chart, 'db', { name: 'x' });
    // A second cluster in the same namespace must not get in.
    new FerretDBCluster(chart, 'other', { name: 'other' });
    const objs = Testing.synth(chart);
    const pods = podTemplates(objs);
    const mine = byKind(objs, 'NetworkPolicy').find((np) => np.metadata.name === 'x-pg-primary-postgresql');
    expect(podsSelectedBy(mine.spec.podSelector, pods)).toEqual(['x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1']);
    expect(mine.spec.policyTypes).toEqual(['Ingress']);
    expect(mine.spec.ingress).toHaveLength(1);
    const rule = mine.spec.ingress[0];
    expect(rule.ports).toEqual([{ protocol: 'TCP', port: 5432 }]);
    for (const peer of rule.from) expect(Object.keys(peer)).toEqual(['podSelector']);
    const allowed = new Set(rule.from.flatMap((peer: any) => podsSelectedBy(peer.podSelector, pods)));
    expect([...allowed].sort()).toEqual(['Deployment/x-ferretdb-ro', 'Deployment/x-ferretdb-rw', 'x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1']);
  });

  test('the client label lets a pod reach PostgreSQL; the FerretDB pods carry it', () => {
    const { cluster, objs } = synthCluster();
    const rule = policies(objs).postgres.spec.ingress[0];
    const clientPeer = rule.from.find((peer: any) => podsSelectedBy(peer.podSelector, [{ id: 'c', kind: 'Pod', owner: 'c', labels: cluster.primary.clientLabels }]).length === 1);
    expect(clientPeer).toBeDefined();
    for (const d of byKind(objs, 'Deployment')) {
      expect(d.spec.template.metadata.labels).toEqual(expect.objectContaining(cluster.primary.clientLabels));
    }
  });

  test('networkPolicy: false removes them', () => {
    expect(byKind(synth({ networkPolicy: false }), 'NetworkPolicy')).toEqual([]);
    expect(byKind(synth(), 'NetworkPolicy')).toHaveLength(2);
  });
});

describe('PodDisruptionBudgets', () => {
  test.each([
    ['2 replicas', {}, ['x-pg-primary', 'x-pg-replica', 'x-ferretdb-rw', 'x-ferretdb-ro']],
    ['0 replicas', { replicas: 0 }, ['x-pg-primary', 'x-pg-replica', 'x-ferretdb-rw']],
  ])('exist for the primary, the replicas and each FerretDB Deployment, each selecting exactly its pods (%s)', (_what, props, owners) => {
    const objs = synth(props);
    const pods = podTemplates(objs);
    const pdbs = byKind(objs, 'PodDisruptionBudget');
    expect(pdbs).toHaveLength(owners.length);
    for (const owner of owners) {
      const workload = objs.find((o) => ['StatefulSet', 'Deployment'].includes(o.kind) && o.metadata.name === owner);
      const own = pods.filter((p) => p.owner === owner).map((p) => p.id);
      const pdb = pdbs.find((p) => JSON.stringify(p.spec.selector.matchLabels) === JSON.stringify(workload.spec.selector.matchLabels));
      expect({ owner, pdb: pdb !== undefined }).toEqual({ owner, pdb: true });
      expect(podsSelectedBy(pdb.spec.selector, pods)).toEqual(own);
      expect(pdb.spec.minAvailable !== undefined || pdb.spec.maxUnavailable !== undefined).toBe(true);
    }
  });
});

describe('scheduling', () => {
  test('by default each group spreads over nodes and PostgreSQL pods avoid each other', () => {
    const objs = synth();
    const pods = podTemplates(objs);
    for (const w of [...byKind(objs, 'StatefulSet'), ...byKind(objs, 'Deployment')]) {
      const spec = w.spec.template.spec;
      const own = pods.filter((p) => p.owner === w.metadata.name && p.kind === w.kind).map((p) => p.id);
      expect(spec.topologySpreadConstraints).toHaveLength(1);
      const spread = spec.topologySpreadConstraints[0];
      expect(spread.topologyKey).toBe('kubernetes.io/hostname');
      expect(podsSelectedBy(spread.labelSelector, pods)).toEqual(own);
    }
    for (const sts of byKind(objs, 'StatefulSet')) {
      const term = sts.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
      expect(term.topologyKey).toBe('kubernetes.io/hostname');
      expect(podsSelectedBy(term.labelSelector, pods)).toEqual(['x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1']);
    }
  });

  test('scheduling.affinity replaces the default spread and anti-affinity', () => {
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['a', 'b'] }] }],
        },
      },
    };
    const objs = synth({ scheduling: { affinity } });
    for (const w of [...byKind(objs, 'StatefulSet'), ...byKind(objs, 'Deployment')]) {
      expect(w.spec.template.spec.affinity).toEqual(affinity);
      expect(w.spec.template.spec.topologySpreadConstraints).toBeUndefined();
    }
  });

  const scheduling = {
    nodeSelector: { 'node-role.example.com/database': 'true' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'database', effect: 'NoSchedule' }],
  };

  test('nodeSelector and tolerations reach every PostgreSQL and FerretDB pod', () => {
    const objs = synth({ scheduling });
    const workloads = podSpecs(objs).filter((p) => p.kind !== 'Job');
    expect(workloads).toHaveLength(4);
    for (const { owner, spec } of workloads) {
      expect({ owner, nodeSelector: spec.nodeSelector, tolerations: spec.tolerations })
        .toEqual({ owner, nodeSelector: scheduling.nodeSelector, tolerations: scheduling.tolerations });
    }
  });

  test('nodeSelector and tolerations reach the bootstrap Job pod too (scheduling is documented as "of every pod")', () => {
    const jobs = podSpecs(synth({ scheduling })).filter((p) => p.kind === 'Job');
    expect(jobs).toHaveLength(1);
    expect({ nodeSelector: jobs[0].spec.nodeSelector, tolerations: jobs[0].spec.tolerations })
      .toEqual({ nodeSelector: scheduling.nodeSelector, tolerations: scheduling.tolerations });
  });
});
