import { Chart, Testing } from 'cdk8s';
import { FerretDBCluster, FerretDBClusterProps, FerretDBTls, PostgresBackend, PostgresTls } from '../src';
import { byKind, errorOf, find, synth, validateAll, parsePostgresUrl } from './util';

const CERT_DIR = '/etc/ferretdb/tls';
const withTls = (props: FerretDBClusterProps = {}) => synth({ ferretdbTls: FerretDBTls.fromSecret('x-mongo-tls'), ...props });
const certManager = (namespace: string | undefined, props: FerretDBClusterProps = {}) => {
  const chart = new Chart(Testing.app(), 'c', { namespace });
  const cluster = new FerretDBCluster(chart, 'db', {
    name: 'x', ferretdbTls: FerretDBTls.certManager({ issuerName: 'internal-ca', issuerKind: 'ClusterIssuer', additionalDnsNames: ['db.example.com'] }), ...props,
  });
  return { cluster, objs: Testing.synth(chart) };
};
const ferretdb = (d: any) => d.spec.template.spec.containers.find((c: any) => c.name === 'ferretdb');
const env = (container: any) => Object.fromEntries(container.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]));

/** The container port a Service's port reaches on the pods it selects (a named targetPort resolved). */
function servedPort(objs: any[], service: any): number[] {
  const pods = byKind(objs, 'Deployment').filter((d) =>
    Object.entries<string>(service.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
  expect(pods.length).toBeGreaterThan(0);
  const target = service.spec.ports[0].targetPort;
  return pods.map((d) => typeof target === 'number' ? target : ferretdb(d).ports.find((p: any) => p.name === target).containerPort);
}

describe('FerretDB\'s MongoDB listener with TLS (ferretdbTls)', () => {
  const objs = withTls();
  const deployments = byKind(objs, 'Deployment');

  test('FerretDB listens with TLS on 27018 with the mounted certificate and key, and in plain text on the pod\'s loopback only', () => {
    expect(deployments).toHaveLength(2);
    for (const d of deployments) {
      expect(env(ferretdb(d))).toMatchObject({
        FERRETDB_LISTEN_TLS: ':27018',
        FERRETDB_LISTEN_TLS_CERT_FILE: `${CERT_DIR}/tls.crt`,
        FERRETDB_LISTEN_TLS_KEY_FILE: `${CERT_DIR}/tls.key`,
        FERRETDB_LISTEN_ADDR: '127.0.0.1:27017',
      });
      // A CA file would make FerretDB demand client certificates.
      expect(env(ferretdb(d)).FERRETDB_LISTEN_TLS_CA_FILE).toBeUndefined();
      expect(ferretdb(d).ports).toEqual([
        { name: 'mongodb', containerPort: 27018, protocol: 'TCP' },
        { name: 'metrics', containerPort: 8088, protocol: 'TCP' },
      ]);
      expect(ferretdb(d).volumeMounts).toContainEqual({ name: 'listener-tls', mountPath: CERT_DIR, readOnly: true });
    }
  });

  test('both Services keep port 27017 and reach only the TLS listener', () => {
    const services = byKind(objs, 'Service').filter((s) => s.spec.ports.some((p: any) => p.name === 'mongodb'));
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['x-ro', 'x-rw']);
    for (const s of services) {
      expect(s.spec.ports[0].port).toBe(27017);
      expect(servedPort(objs, s)).toEqual([27018]);
    }
  });

  test('readiness still pings PostgreSQL: FerretDB\'s /debug/readyz pings its plain listener, which stays on', () => {
    for (const d of deployments) {
      expect(ferretdb(d).readinessProbe.httpGet).toEqual({ path: '/debug/readyz', port: 'metrics' });
      expect(env(ferretdb(d)).FERRETDB_LISTEN_ADDR).not.toMatch(/^(-|)$/);
    }
  });

  test('the NetworkPolicy admits clients to 27018 only (the plain listener is not reachable from outside the pod anyway)', () => {
    const policy = find(objs, 'NetworkPolicy', 'x-ferretdb');
    expect(policy.spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: 27018 }]);
  });

  test('the pods mount only tls.crt and tls.key of the Secret, 0440 for FerretDB\'s group (fsGroup 1000)', () => {
    for (const d of deployments) {
      const spec = d.spec.template.spec;
      expect(spec.volumes.find((v: any) => v.name === 'listener-tls').secret).toEqual({
        secretName: 'x-mongo-tls',
        defaultMode: 0o440,
        items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }],
      });
      expect(spec.securityContext).toMatchObject({ runAsUser: 1000, fsGroup: 1000 });
    }
  });

  test('the certificate-watch sidecar is the only container with an API token; it watches its own Deployment', () => {
    for (const d of deployments) {
      const spec = d.spec.template.spec;
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(spec.serviceAccountName).toBe('x-ferretdb-cert-watch');
      const withToken = spec.containers.filter((c: any) => c.volumeMounts.some((m: any) => m.name === 'api-token'));
      expect(withToken.map((c: any) => c.name)).toEqual(['certificate-watch']);
      expect(env(withToken[0])).toMatchObject({ DEPLOYMENT: d.metadata.name, WATCH_FILES: `${CERT_DIR}/tls.crt ${CERT_DIR}/tls.key /etc/ferretdb/postgres-password/password` });
      expect(withToken[0].command).toEqual(['sh', '/etc/ferretdb/scripts/certificate-watch.sh']);
      expect(withToken[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(withToken[0].resources.limits.memory).toBeDefined();
    }
  });

  test('certificate-watch.sh needs no writable /tmp (read-only root, no /tmp mount): it writes only under $STATE_DIR, an emptyDir', () => {
    const script: string = find(objs, 'ConfigMap', 'x-ferretdb-cert-watch').data['certificate-watch.sh'];
    expect(script).not.toMatch(/mktemp|<<|\/tmp/);
    expect([...script.matchAll(/> *"([^"]+)"/g)].map((m) => m[1]).every((target) => target.startsWith('$STATE_DIR/'))).toBe(true);
    const sidecar = deployments[0].spec.template.spec.containers.find((c: any) => c.name === 'certificate-watch');
    const stateMount = sidecar.volumeMounts.find((m: any) => m.mountPath === env(sidecar).STATE_DIR);
    expect(deployments[0].spec.template.spec.volumes.find((v: any) => v.name === stateMount.name).emptyDir).toBeDefined();
  });

  test('its Role may only patch the FerretDB Deployments of this cluster, by name', () => {
    const role = find(objs, 'Role', 'x-ferretdb-cert-watch');
    expect(role.rules).toEqual([{ apiGroups: ['apps'], resources: ['deployments'], resourceNames: ['x-ferretdb-rw', 'x-ferretdb-ro'], verbs: ['patch'] }]);
    expect(find(objs, 'RoleBinding', 'x-ferretdb-cert-watch')).toMatchObject({
      roleRef: { kind: 'Role', name: 'x-ferretdb-cert-watch' },
      subjects: [{ kind: 'ServiceAccount', name: 'x-ferretdb-cert-watch' }],
    });
    expect(find(objs, 'ServiceAccount', 'x-ferretdb-cert-watch').automountServiceAccountToken).toBe(false);
    const oneSide = withTls({ replicas: 0 });
    expect(find(oneSide, 'Role', 'x-ferretdb-cert-watch').rules[0].resourceNames).toEqual(['x-ferretdb-rw']);
  });

  test('every object validates against Kubernetes\' schemas', () => {
    expect(() => validateAll(objs)).not.toThrow();
  });

  test('the same on the CloudNativePG backend: the FerretDB side does not depend on the backend', () => {
    const cnpg = withTls({ backend: PostgresBackend.cloudNativePG() });
    const ours = (list: any[]) => byKind(list, 'Deployment').map((d) => {
      const e = env(ferretdb(d));
      const names = d.spec.template.spec.containers.map((c: any) => c.name);
      return [e.FERRETDB_LISTEN_ADDR, e.FERRETDB_LISTEN_TLS, e.FERRETDB_LISTEN_TLS_CERT_FILE, names];
    });
    expect(ours(cnpg)).toEqual(ours(objs));
    expect(() => validateAll(cnpg)).not.toThrow();
  });
});

describe('the certificate-watch sidecar watches every file FerretDB reads at start: its TLS files and its password', () => {
  /** The files FerretDB reads once: sslrootcert of its URL, its listener's certificate and key. */
  const readAtStart = (d: any): string[] => {
    const e = env(ferretdb(d));
    const rootCert = parsePostgresUrl(e.FERRETDB_POSTGRESQL_URL).url.searchParams.get('sslrootcert');
    return [rootCert, e.FERRETDB_LISTEN_TLS_CERT_FILE, e.FERRETDB_LISTEN_TLS_KEY_FILE].filter((f): f is string => !!f);
  };
  const watched = (d: any): string[] => {
    const sidecar = d.spec.template.spec.containers.find((c: any) => c.name === 'certificate-watch');
    return sidecar ? env(sidecar).WATCH_FILES.split(' ') : [];
  };
  /** The volume (and key) a path of a container resolves to. */
  const source = (d: any, container: any, file: string) => {
    const m = container.volumeMounts.find((vm: any) => file.startsWith(`${vm.mountPath}/`));
    const v = d.spec.template.spec.volumes.find((vol: any) => vol.name === m.name);
    return { secret: v.secret.secretName, key: file.slice(m.mountPath.length + 1) };
  };

  /** The password the sidecar watches: the key of the Secret FerretDB's PGPASSWORD comes from, mounted only in the sidecar. */
  const expectPasswordWatched = (d: any) => {
    const sidecar = d.spec.template.spec.containers.find((c: any) => c.name === 'certificate-watch');
    const ref = ferretdb(d).env.find((e: any) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef;
    expect(watched(d)[watched(d).length - 1]).toBe('/etc/ferretdb/postgres-password/password');
    const m = sidecar.volumeMounts.find((vm: any) => vm.mountPath === '/etc/ferretdb/postgres-password');
    const v = d.spec.template.spec.volumes.find((vol: any) => vol.name === m.name);
    expect(v.secret).toMatchObject({ secretName: ref.name, items: [{ key: ref.key, path: 'password' }] });
    expect(ferretdb(d).volumeMounts.map((vm: any) => vm.name)).not.toContain(m.name);
  };

  test.each([
    ['ferretdbTls', withTls()],
    ['postgresTls', synth({ postgresTls: PostgresTls.fromSecret('x-pg-tls') })],
    ['ferretdbTls and postgresTls', withTls({ postgresTls: PostgresTls.fromSecret('x-pg-tls') })],
    ['the CloudNativePG backend (its CA renews itself)', synth({ backend: PostgresBackend.cloudNativePG() })],
    ['the CloudNativePG backend and ferretdbTls', withTls({ backend: PostgresBackend.cloudNativePG() })],
  ])('with %s: the same files, from the same Secrets, and a Role for the cluster\'s Deployments', (_what, objs) => {
    const deployments = byKind(objs, 'Deployment');
    for (const d of deployments) {
      const files = readAtStart(d);
      expect(files.length).toBeGreaterThan(0);
      expect(watched(d)).toEqual([...files, '/etc/ferretdb/postgres-password/password']);
      expectPasswordWatched(d);
      const sidecar = d.spec.template.spec.containers.find((c: any) => c.name === 'certificate-watch');
      for (const f of files) expect(source(d, sidecar, f)).toEqual(source(d, ferretdb(d), f));
    }
    expect(find(objs, 'Role', 'x-ferretdb-cert-watch').rules[0].resourceNames).toEqual(deployments.map((d) => d.metadata.name));
    expect(() => validateAll(objs)).not.toThrow();
  });

  test('without TLS files (the StatefulSet default), the sidecar watches the password alone (a rotated password rolls FerretDB)', () => {
    const objs = synth();
    for (const d of byKind(objs, 'Deployment')) {
      expect(watched(d)).toEqual(['/etc/ferretdb/postgres-password/password']);
      expectPasswordWatched(d);
    }
    expect(find(objs, 'Role', 'x-ferretdb-cert-watch').rules[0].resourceNames).toEqual(byKind(objs, 'Deployment').map((d) => d.metadata.name));
  });
});

describe('without ferretdbTls (the default)', () => {
  const objs = synth();

  test('FerretDB listens in plain text on 27017, and mounts no TLS file (only the password watch remains)', () => {
    for (const d of byKind(objs, 'Deployment')) {
      expect(env(ferretdb(d)).FERRETDB_LISTEN_ADDR).toBe(':27017');
      expect(env(ferretdb(d)).FERRETDB_LISTEN_TLS).toBeUndefined();
      expect(d.spec.template.spec.containers.map((c: any) => c.name)).toEqual(['ferretdb', 'certificate-watch']);
      expect(ferretdb(d).volumeMounts.map((m: any) => m.mountPath).sort()).toEqual(['/state', '/tmp']);
    }
    expect(find(objs, 'NetworkPolicy', 'x-ferretdb').spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: 27017 }]);
  });
});

describe('the listener certificate from cert-manager (FerretDBTls.certManager)', () => {
  const { cluster, objs } = certManager('orders');
  const cert = find(objs, 'Certificate', 'x-ferretdb-tls');

  test('a Certificate for the Secret the FerretDB pods mount, from the given issuer, for server auth, a new key on each renewal', () => {
    expect(cert.spec).toMatchObject({
      secretName: 'x-ferretdb-tls',
      issuerRef: { name: 'internal-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
      privateKey: { rotationPolicy: 'Always' },
    });
    expect(cert.spec.usages).toContain('server auth');
    for (const d of byKind(objs, 'Deployment')) {
      expect(d.spec.template.spec.volumes.find((v: any) => v.name === 'listener-tls').secret.secretName).toBe('x-ferretdb-tls');
    }
  });

  test('names both Services as clients write them in and out of the namespace, and the additional names', () => {
    const services = ['x-rw', 'x-ro'];
    const expected = services.flatMap((n) => [n, `${n}.orders`, `${n}.orders.svc`, `${n}.orders.svc.cluster.local`]);
    expect(cert.spec.dnsNames).toEqual([...expected, 'db.example.com']);
    expect(cluster.tlsDnsNames).toEqual(expected);
    // Every Service clients reach FerretDB through is named.
    for (const s of byKind(objs, 'Service').filter((svc) => svc.spec.ports.some((p: any) => p.name === 'mongodb'))) {
      expect(cert.spec.dnsNames).toContain(s.metadata.name);
    }
  });

  test('without a chart namespace it lists the short names only', () => {
    const { objs: noNs } = certManager(undefined);
    expect(find(noNs, 'Certificate', 'x-ferretdb-tls').spec.dnsNames).toEqual(['x-rw', 'x-ro', 'db.example.com']);
  });

  test('validates against cert-manager 1.21.1\'s CRD, and the other objects against Kubernetes\' schemas', () => {
    expect(() => validateAll(objs)).not.toThrow();
  });

  test('with PostgreSQL TLS too, the two Certificates and Secrets are distinct', () => {
    const both = certManager('orders', { postgresTls: PostgresTls.certManager({ issuerName: 'internal-ca' }) });
    const certs = byKind(both.objs, 'Certificate');
    expect(certs.map((c) => `${c.metadata.name} ${c.spec.secretName}`).sort()).toEqual(['x-ferretdb-tls x-ferretdb-tls', 'x-pg-primary-tls x-pg-primary-tls']);
    expect(certs[0].spec.dnsNames.filter((n: string) => certs[1].spec.dnsNames.includes(n))).toEqual([]);
  });
});

describe('bad ferretdbTls input fails at synth time, naming the prop and the value', () => {
  test.each([
    ['a Secret name that is not a DNS name', () => FerretDBTls.fromSecret('Bad_Name'), /Invalid ferretdbTls \(FerretDBTls.fromSecret secretName\): "Bad_Name"/],
    ['an issuer kind other than Issuer or ClusterIssuer', () => FerretDBTls.certManager({ issuerName: 'ca', issuerKind: 'Vault' }), /Invalid ferretdbTls \(FerretDBTls.certManager issuerKind\): "Vault". Expected "Issuer" or "ClusterIssuer"/],
    ['an empty issuer name', () => FerretDBTls.certManager({ issuerName: '' }), /Invalid ferretdbTls \(FerretDBTls.certManager issuerName\): ""/],
    ['an additional DNS name with upper case', () => FerretDBTls.certManager({ issuerName: 'ca', additionalDnsNames: ['DB.example.com'] }), /Invalid ferretdbTls \(FerretDBTls.certManager additionalDnsNames\[0\]\): "DB.example.com"/],
    ['additional DNS names that are not a list', () => FerretDBTls.certManager({ issuerName: 'ca', additionalDnsNames: 'db' as any }), /Invalid ferretdbTls \(FerretDBTls.certManager additionalDnsNames\): "db"/],
    ['no options', () => FerretDBTls.certManager(undefined as any), /Invalid ferretdbTls \(FerretDBTls.certManager options\): undefined/],
    ['something else than a FerretDBTls', () => synth({ ferretdbTls: { secretName: 'x' } as any }), /Invalid ferretdbTls: \{"secretName":"x"\}. Expected FerretDBTls.fromSecret/],
  ])('%s', (_what, fn, message) => {
    expect(errorOf(fn)).toMatch(message);
  });
});
