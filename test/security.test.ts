import { Testing } from 'cdk8s';
import { Credentials, FerretDBCluster, FerretDBTls, PostgresBackend, PostgresTls, ReplicationMode, StreamingReplica } from '../src';
import {
  byKind, containers, find, podSpecs, podsSelectedBy, podTemplates, postgresConfigMap, quantity, selectorMatches, synth, synthCluster,
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

  test('writable paths are volumes: PGDATA, the socket directory and /tmp (the state sidecar writes only to the socket directory\'s emptyDir, the certificate-watch sidecar only to its own)', () => {
    const objs = synth();
    for (const { owner, spec } of podSpecs(objs)) {
      for (const c of spec.containers.filter((container: any) => !['state', 'lease', 'certificate-watch'].includes(container.name))) {
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
  /** Volumes that carry a service account token. */
  const tokenVolumes = (spec: any) => (spec.volumes ?? []).filter((v: any) => v.projected?.sources?.some((src: any) => src.serviceAccountToken));

  test('no pod automounts a service account token except the bootstrap Job\'s', () => {
    for (const { owner, kind, spec } of podSpecs(objs)) {
      expect({ owner, automount: spec.automountServiceAccountToken }).toEqual({ owner, automount: kind === 'Job' });
    }
    for (const sa of byKind(objs, 'ServiceAccount')) expect(sa.automountServiceAccountToken).toBe(false);
  });

  test('the only token of the PostgreSQL pods is a projected volume that only the lease sidecar (and, in the primary StatefulSet, the state sidecar) mounts; in FerretDB pods only the certificate-watch sidecar mounts one', () => {
    const primary = find(objs, 'StatefulSet', 'x-pg-primary').spec.template.spec;
    const replica = find(objs, 'StatefulSet', 'x-pg-replica').spec.template.spec;
    expect(tokenVolumes(replica)).toHaveLength(1);
    expect(replica.containers.filter((c: any) => c.volumeMounts.some((m: any) => m.name === tokenVolumes(replica)[0].name)).map((c: any) => c.name)).toEqual(['lease']);
    expect(replica.serviceAccountName).toBe('x-pg-primary-standby');
    const [token] = tokenVolumes(primary);
    expect(tokenVolumes(primary)).toHaveLength(1);
    const mountedBy = primary.containers.filter((c: any) => c.volumeMounts.some((m: any) => m.name === token.name)).map((c: any) => c.name);
    expect(mountedBy).toEqual(['lease', 'state']);
    for (const c of ['lease', 'state']) {
      expect(primary.containers.find((x: any) => x.name === c).volumeMounts.find((m: any) => m.name === token.name).readOnly).toBe(true);
    }
    // A short-lived token (the kubelet rotates it); only its owner can read the files.
    const source = token.projected.sources.find((src: any) => src.serviceAccountToken).serviceAccountToken;
    expect(source.expirationSeconds).toBeLessThanOrEqual(3607);
    // No permission for others (mode 0o440: owner and group only).
    expect(token.projected.defaultMode % 8).toBe(0);
    for (const d of byKind(objs, 'Deployment')) {
      const spec = d.spec.template.spec;
      const names = tokenVolumes(spec).map((v: any) => v.name);
      expect(names).toHaveLength(1);
      const mounting = spec.containers.filter((c: any) => c.volumeMounts.some((m: any) => names.includes(m.name))).map((c: any) => c.name);
      expect(mounting).toEqual(['certificate-watch']);
    }
  });

  test('only the bootstrap Job, the PostgreSQL StatefulSets and the FerretDB Deployments (certificate-watch) name a ServiceAccount; each is bound to its own Role, the PostgreSQL pods\' also to the Lease\'s', () => {
    const named = podSpecs(objs).filter((p) => p.spec.serviceAccountName !== undefined).map((p) => `${p.kind}/${p.owner}`);
    expect(named.sort()).toEqual(['Deployment/x-ferretdb-ro', 'Deployment/x-ferretdb-rw', `Job/${byKind(objs, 'Job')[0].metadata.name}`, 'StatefulSet/x-pg-primary', 'StatefulSet/x-pg-replica']);
    const accounts = byKind(objs, 'ServiceAccount').map((sa) => sa.metadata.name).sort();
    expect(accounts).toEqual(['x-credentials-bootstrap', 'x-ferretdb-cert-watch', 'x-pg-primary', 'x-pg-primary-standby']);
    for (const { spec } of podSpecs(objs).filter((p) => p.spec.serviceAccountName !== undefined)) {
      expect(accounts).toContain(spec.serviceAccountName);
    }
    const lease = 'x-pg-primary-leader';
    const expected: { [sa: string]: string[] } = {
      'x-credentials-bootstrap': ['x-credentials-bootstrap'],
      'x-ferretdb-cert-watch': ['x-ferretdb-cert-watch'],
      'x-pg-primary': [lease, 'x-pg-primary-state'],
      'x-pg-primary-standby': [lease],
    };
    for (const sa of accounts) {
      const bindings = byKind(objs, 'RoleBinding').filter((b) => b.subjects.some((subject: any) => subject.kind === 'ServiceAccount' && subject.name === sa));
      for (const b of bindings) {
        expect(b.roleRef.kind).toBe('Role');
        find(objs, 'Role', b.roleRef.name);
      }
      expect({ sa, roles: bindings.map((b) => b.roleRef.name).sort() }).toEqual({ sa, roles: expected[sa] });
    }
    // Only the Lease's binding has two subjects.
    for (const b of byKind(objs, 'RoleBinding').filter((x) => x.metadata.name !== lease)) expect(b.subjects).toHaveLength(1);
    expect(byKind(objs, 'RoleBinding')).toHaveLength(4);
    expect(byKind(objs, 'ClusterRole')).toEqual([]);
    expect(byKind(objs, 'ClusterRoleBinding')).toEqual([]);
  });

  /** The rules of the Role bound to a ServiceAccount. */
  const rulesOf = (objects: any[], sa: string) => {
    const binding = byKind(objects, 'RoleBinding').find((b) => !b.metadata.name.endsWith('-leader') && b.subjects.some((subject: any) => subject.name === sa));
    return find(objects, 'Role', binding.roleRef.name).rules;
  };

  test('the bootstrap Job\'s Role may only create Secrets', () => {
    expect(rulesOf(objs, byKind(objs, 'Job')[0].spec.template.spec.serviceAccountName))
      .toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }]);
  });

  test('the state sidecar\'s Role may only get and patch the one state ConfigMap', () => {
    const sa = find(objs, 'StatefulSet', 'x-pg-primary').spec.template.spec.serviceAccountName;
    expect(sa).toBe('x-pg-primary');
    expect(rulesOf(objs, sa)).toEqual([{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['x-pg-primary-state'], verbs: ['get', 'patch'] }]);
    find(objs, 'ConfigMap', 'x-pg-primary-state');
  });
});

describe('every Role names the objects it may touch', () => {
  const everything = {
    monitoring: {},
    replicas: 2,
    postgresTls: PostgresTls.fromSecret('x-pg-tls'),
    ferretdbTls: FerretDBTls.fromSecret('x-mongo-tls'),
  };
  test.each([
    ['StatefulSet backend, TLS both ways, monitoring', synth(everything)],
    ['StatefulSet backend, defaults', synth()],
    ['CloudNativePG backend, MongoDB TLS, monitoring', synth({ ...everything, postgresTls: undefined, backend: PostgresBackend.cloudNativePG() })],
  ])('%s: resourceNames on every rule but a create-only one (Kubernetes cannot restrict create by name)', (_what, objs) => {
    const rules = [...byKind(objs, 'Role'), ...byKind(objs, 'ClusterRole')]
      .flatMap((role) => role.rules.map((rule: any) => ({ role: role.metadata.name, ...rule })));
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      const createOnly = rule.verbs.length === 1 && rule.verbs[0] === 'create';
      expect({ rule, named: createOnly ? 'create only' : rule.resourceNames?.length > 0 })
        .toEqual({ rule, named: createOnly ? 'create only' : true });
      expect(rule.verbs).not.toContain('*');
      expect(rule.resources).not.toContain('*');
    }
  });
});

describe('credentials', () => {
  test('no Secret and no plaintext password is synthesized', () => {
    for (const [, objs] of variants) {
      expect(byKind(objs, 'Secret')).toEqual([]);
      for (const { owner, container } of containers(objs)) {
        const mounts = (container.volumeMounts ?? []).map((m: any) => m.mountPath);
        for (const e of container.env ?? []) {
          if (/PASS|SECRET_KEY|TOKEN/i.test(e.name)) {
            // A secret comes from a Secret, never as a value; *_DIR variables name where a secret volume is mounted.
            const ok = e.value === undefined || (e.name.endsWith('_DIR') && mounts.includes(e.value));
            expect({ owner, env: e.name, value: e.value, ok }).toEqual({ owner, env: e.name, value: e.value, ok: true });
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
    for (const { container } of containers(objs).filter((c) => c.kind === 'Deployment' && c.container.name === 'ferretdb')) {
      expect(container.env.find((e: any) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef.name).toBe(cluster.secretName);
    }
  });

  test('with Credentials.fromSecret no Job (nor its ServiceAccount, Role, RoleBinding) is synthesized and pods reference that Secret', () => {
    const { cluster, objs } = synthCluster({ credentials: Credentials.fromSecret('x') });
    for (const kind of ['Job', 'Secret']) expect(byKind(objs, kind)).toEqual([]);
    // Only the state, lease and certificate-watch sidecars'.
    for (const kind of ['Role', 'RoleBinding']) {
      expect(byKind(objs, kind).map((o) => o.metadata.name).sort()).toEqual(['x-ferretdb-cert-watch', 'x-pg-primary-leader', 'x-pg-primary-state']);
    }
    expect(byKind(objs, 'ConfigMap').map((o) => o.metadata.name).filter((n) => n !== 'x-pg-primary-config')).toEqual(['x-pg-primary-state', 'x-ferretdb-cert-watch']);
    expect(byKind(objs, 'ServiceAccount').map((o) => o.metadata.name).sort()).toEqual(['x-ferretdb-cert-watch', 'x-pg-primary', 'x-pg-primary-standby']);
    expect(cluster.secretName).toBe('x');
    const refs: string[] = [];
    for (const { spec } of podSpecs(objs)) {
      for (const v of spec.volumes ?? []) if (v.secret) refs.push(v.secret.secretName);
      for (const c of spec.containers) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) refs.push(e.valueFrom.secretKeyRef.name);
      }
    }
    // Two StatefulSet volumes, and in each FerretDB Deployment PGPASSWORD and the certificate-watch sidecar's password volume.
    expect(refs.length).toBe(6);
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

describe('the credentials Job (a Job\'s template is immutable: a changed Job must be a new Job)', () => {
  const jobOf = (objs: any[]) => {
    const jobs = byKind(objs, 'Job');
    expect(jobs).toHaveLength(1);
    return jobs[0];
  };
  const jobName = (props = {}) => jobOf(synth(props)).metadata.name;

  test('is named <secret>-bootstrap-<8 hex digits>, the name PostgresPrimary.credentialsJobName gives', () => {
    const { cluster, objs } = synthCluster();
    const name = jobOf(objs).metadata.name;
    expect(name).toMatch(/^x-credentials-bootstrap-[0-9a-f]{8}$/);
    expect(cluster.primary.credentialsJobName).toBe(name);
  });

  test('is removed a day after it finished (ttlSecondsAfterFinished 86400)', () => {
    expect(jobOf(synth()).spec.ttlSecondsAfterFinished).toBe(86400);
  });

  test('its ServiceAccount, Role, RoleBinding and script ConfigMap keep the name <secret>-bootstrap, which its pod uses', () => {
    const objs = synth();
    for (const kind of ['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap']) find(objs, kind, 'x-credentials-bootstrap');
    const spec = jobOf(objs).spec.template.spec;
    expect(spec.serviceAccountName).toBe('x-credentials-bootstrap');
    expect(spec.volumes.find((v: any) => v.configMap).configMap.name).toBe('x-credentials-bootstrap');
  });

  test('its name is the same on every synth and when only other objects change', () => {
    const name = jobName();
    expect(jobName()).toBe(name);
    expect(jobName({ replicas: 5, ferretdbWriterReplicas: 3, parameters: { work_mem: '8MB' }, maxConnections: 500 })).toBe(name);
    expect(jobName({ replicationMode: ReplicationMode.synchronousQuorum(1), storage: { size: '20Gi' } })).toBe(name);
  });

  test.each([
    ['scheduling.nodeSelector', { scheduling: { nodeSelector: { 'node-role.example.com/database': 'true' } } }],
    ['scheduling.tolerations', { scheduling: { tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }] } }],
    ['labels', { labels: { team: 'payments' } }],
  ])('its name changes when its content changes (%s)', (_what, props) => {
    const changed = jobName(props);
    expect(changed).toMatch(/^x-credentials-bootstrap-[0-9a-f]{8}$/);
    expect(changed).not.toBe(jobName());
  });

  test('a long Secret name still gives a Job name of at most 63 characters that ends with the hash', () => {
    const secretName = `s${'e'.repeat(98)}t`;
    const objs = synth({ credentials: Credentials.fromGeneratedSecret({ secretName }) });
    const name = jobOf(objs).metadata.name;
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?-[0-9a-f]{8}$/);
    expect(jobOf(objs).spec.template.spec.containers[0].env.find((e: any) => e.name === 'SECRET_NAME').value).toBe(secretName);
  });

  test('with Credentials.fromSecret there is no Job and no credentialsJobName', () => {
    const { cluster, objs } = synthCluster({ credentials: Credentials.fromSecret('x') });
    expect(byKind(objs, 'Job')).toEqual([]);
    expect(cluster.primary.credentialsJobName).toBeUndefined();
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

  /** Whether a NetworkPolicy peer admits a pod with these labels in this namespace (the policy's own namespace: "home"). */
  function admits(peer: any, namespace: string, labels: { [key: string]: string } = {}): boolean {
    const nsLabels = { 'kubernetes.io/metadata.name': namespace };
    if (peer.namespaceSelector !== undefined) {
      return selectorMatches(peer.namespaceSelector, nsLabels) && (peer.podSelector === undefined || selectorMatches(peer.podSelector, labels));
    }
    return namespace === 'home' && selectorMatches(peer.podSelector, labels);
  }

  test('allowedNamespaces let every pod of those namespaces reach 27017, besides every pod of the cluster\'s namespace', () => {
    const { ferretdb } = policies(synth({ allowedNamespaces: ['web', 'api'] }));
    expect(ferretdb.spec.ingress).toHaveLength(1);
    const [rule] = ferretdb.spec.ingress;
    expect(rule.ports).toEqual([{ protocol: 'TCP', port: 27017 }]);
    expect(rule.from).toEqual([
      { podSelector: {} },
      { namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['web', 'api'] }] } },
    ]);
    const admitted = (ns: string) => rule.from.some((peer: any) => admits(peer, ns, { app: 'any' }));
    expect(['home', 'web', 'api', 'other', 'kube-system'].filter(admitted)).toEqual(['home', 'web', 'api']);
  });

  test('allowedNamespaces add to allowedClients (they do not replace them)', () => {
    const allowedClients = [{ podSelector: { matchLabels: { role: 'api' } } }];
    const { ferretdb } = policies(synth({ allowedClients, allowedNamespaces: ['web'] }));
    const [rule] = ferretdb.spec.ingress;
    expect(rule.from[0]).toEqual(allowedClients[0]);
    expect(admits(rule.from[0], 'home', { role: 'api' })).toBe(true);
    expect(rule.from.some((peer: any) => admits(peer, 'home', { role: 'other' }))).toBe(false);
    expect(rule.from.some((peer: any) => admits(peer, 'web', { role: 'other' }))).toBe(true);
  });

  test('allowedNamespaces: [] changes nothing, and no allowedNamespaces ever opens PostgreSQL (5432) or metrics (8088)', () => {
    expect(policies(synth({ allowedNamespaces: [] })).ferretdb.spec).toEqual(policies(synth()).ferretdb.spec);
    const scrapers = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    const objs = synth({ allowedNamespaces: ['web'], metricsScrapers: scrapers });
    expect(policies(objs).postgres.spec).toEqual(policies(synth()).postgres.spec);
    const metrics = policies(objs).ferretdb.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === 8088));
    expect(metrics.from).toEqual(scrapers);
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
  /** The budgets that select each pod, by pod id. */
  function budgetsPerPod(objs: any[]): { [pod: string]: string[] } {
    const budgets = byKind(objs, 'PodDisruptionBudget');
    return Object.fromEntries(podTemplates(objs).map((p) => [p.id,
      budgets.filter((b) => podsSelectedBy(b.spec.selector, [p]).length === 1).map((b) => b.metadata.name)]));
  }

  function withZoneB(currentPrimary?: string): any[] {
    const chart = Testing.chart();
    const cluster = new FerretDBCluster(chart, 'db', { name: 'x', currentPrimary });
    new StreamingReplica(chart, 'ZoneB', { primary: cluster.primary, replicas: 2, name: 'x-pg-zone-b' });
    return Testing.synth(chart);
  }

  const topologies: [string, () => any[]][] = [
    ['2 replicas', () => synth()],
    ['0 replicas', () => synth({ replicas: 0 })],
    ['after a promotion (currentPrimary x-pg-replica-1)', () => synth({ currentPrimary: 'x-pg-replica-1' })],
    ['5 replicas after a promotion (currentPrimary x-pg-replica-3)', () => synth({ replicas: 5, currentPrimary: 'x-pg-replica-3' })],
    ['a second replica group', () => withZoneB()],
    ['a second replica group after a promotion into it (currentPrimary x-pg-zone-b-1)', () => withZoneB('x-pg-zone-b-1')],
  ];

  test.each(topologies)('every PostgreSQL and FerretDB pod is selected by exactly one budget (the eviction API refuses pods under two) (%s)', (_what, build) => {
    const objs = build();
    const perPod = budgetsPerPod(objs);
    for (const p of podTemplates(objs).filter((pod) => pod.kind !== 'Job')) {
      expect({ pod: p.id, budgets: perPod[p.id].length }).toEqual({ pod: p.id, budgets: 1 });
    }
  });

  test.each(topologies)('the primary budget selects exactly the current primary pod, all others are under <primary>-standbys (%s)', (_what, build) => {
    const objs = build();
    const leader = postgresConfigMap(objs).data.leader.trim();
    const pgPods = podTemplates(objs).filter((p) => p.kind === 'StatefulSet').map((p) => p.id);
    expect(pgPods).toContain(leader);
    expect(podsSelectedBy(find(objs, 'PodDisruptionBudget', 'x-pg-primary').spec.selector, podTemplates(objs))).toEqual([leader]);
    expect(podsSelectedBy(find(objs, 'PodDisruptionBudget', 'x-pg-primary-standbys').spec.selector, podTemplates(objs)))
      .toEqual(pgPods.filter((p) => p !== leader));
  });

  test('the primary stays available while it has standbys (minAvailable 1); with none a drain may evict it (minAvailable 0)', () => {
    expect(find(synth(), 'PodDisruptionBudget', 'x-pg-primary').spec).toEqual(expect.objectContaining({ minAvailable: 1 }));
    expect(find(synth({ currentPrimary: 'x-pg-replica-0' }), 'PodDisruptionBudget', 'x-pg-primary').spec.minAvailable).toBe(1);
    const alone = find(synth({ replicas: 0 }), 'PodDisruptionBudget', 'x-pg-primary').spec;
    expect(alone.minAvailable).toBe(0);
    expect(alone.maxUnavailable).toBeUndefined();
  });

  test('standbys go down one at a time (maxUnavailable 1)', () => {
    const standbys = find(synth(), 'PodDisruptionBudget', 'x-pg-primary-standbys').spec;
    expect(standbys.maxUnavailable).toBe(1);
    expect(standbys.minAvailable).toBeUndefined();
  });

  test('the budgets are the primary\'s two and one per FerretDB Deployment: a StreamingReplica group adds none', () => {
    expect(byKind(synth(), 'PodDisruptionBudget').map((b) => b.metadata.name).sort())
      .toEqual(['x-ferretdb-ro', 'x-ferretdb-rw', 'x-pg-primary', 'x-pg-primary-standbys']);
    expect(byKind(synth({ replicas: 0 }), 'PodDisruptionBudget').map((b) => b.metadata.name).sort())
      .toEqual(['x-ferretdb-rw', 'x-pg-primary', 'x-pg-primary-standbys']);
    expect(byKind(withZoneB(), 'PodDisruptionBudget')).toHaveLength(4);
  });

  test('each FerretDB Deployment keeps its own budget (maxUnavailable 1) selecting exactly its pods', () => {
    const objs = synth();
    for (const name of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      const budget = find(objs, 'PodDisruptionBudget', name);
      expect(podsSelectedBy(budget.spec.selector, podTemplates(objs))).toEqual([`Deployment/${name}`]);
      expect(budget.spec.maxUnavailable).toBe(1);
    }
  });
});

describe('scheduling', () => {
  test('by default PostgreSQL pods spread over nodes and zones, FerretDB pods over nodes, softly (a one-zone cluster still schedules)', () => {
    const objs = synth();
    const pods = podTemplates(objs);
    for (const w of [...byKind(objs, 'StatefulSet'), ...byKind(objs, 'Deployment')]) {
      const spec = w.spec.template.spec;
      const own = pods.filter((p) => p.owner === w.metadata.name && p.kind === w.kind).map((p) => p.id);
      const keys = w.kind === 'StatefulSet' ? ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'] : ['kubernetes.io/hostname'];
      expect(spec.topologySpreadConstraints.map((c: any) => c.topologyKey)).toEqual(keys);
      for (const spread of spec.topologySpreadConstraints) {
        expect(podsSelectedBy(spread.labelSelector, pods)).toEqual(own);
        expect(spread.whenUnsatisfiable).toBe('ScheduleAnyway');
        expect(spread.maxSkew).toBe(1);
      }
    }
  });

  test('by default PostgreSQL pods prefer nodes and zones without another PostgreSQL pod of the cluster', () => {
    const objs = synth();
    const pods = podTemplates(objs);
    for (const sts of byKind(objs, 'StatefulSet')) {
      const terms = sts.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
      expect(terms.map((t: any) => t.podAffinityTerm.topologyKey)).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
      for (const t of terms) {
        expect(podsSelectedBy(t.podAffinityTerm.labelSelector, pods)).toEqual(['x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1']);
        expect(t.weight).toBeGreaterThan(0);
      }
      expect(sts.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
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
