import { Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { certificateWatchAccess } from './certificate-watch';
import { ferretdbDeployment, METRICS_PORT, MONGODB_TLS_PORT } from './deployment';
import { MONGODB_PORT, ReadService } from './read-service';
import { FerretDBTls } from './tls';
import { Resources, Scheduling } from '../common';
import { PostgresConnection } from '../postgres/connection';
import { kube } from '../private/kube';
import { metadataLabels } from '../private/labels';
import { GROUP_LABEL } from '../private/names';

/** Label on every FerretDB pod of a cluster (NetworkPolicy); value: the cluster name. */
export const FERRETDB_LABEL = 'ferretdb.cdk8s.io/ferretdb';

/**
 * FerretDB in front of PostgreSQL, whichever backend runs it: it knows PostgreSQL only through
 * the backend's `PostgresConnection`.
 */
export interface FrontendOptions {
  /** The cluster's name: the base of every object's name. */
  readonly name: string;
  readonly postgres: PostgresConnection;
  /** Hot standbys: with none, the read Service selects the writer pods. */
  readonly replicas: number;
  readonly writers: number;
  readonly readers: number;
  readonly image: string;
  readonly poolSize: number;
  readonly ferretdbTls?: FerretDBTls;
  readonly telemetry: boolean;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
  readonly labels?: { [key: string]: string };
}

/** What the frontend built. */
export interface Frontend {
  readonly writeServiceName: string;
  readonly readService: ReadService;
  /** The FerretDB Deployments (writer, then reader when there are replicas). */
  readonly deployments: string[];
  /** Labels on every FerretDB pod. */
  readonly podLabels: { [key: string]: string };
  /** Whether MongoDB clients reach FerretDB over TLS (port 27018 in the pods). */
  readonly listenerTls: boolean;
}

/** Metadata labels of a FerretDB object of the cluster. */
export function ferretdbLabels(name: string, component: string, labels?: { [key: string]: string }): { [key: string]: string } {
  return metadataLabels({ name: 'ferretdb', instance: name, component }, labels);
}

/**
 * The writer and reader Deployments, the write Service and the ReadService, the
 * certificate-watch sidecars' access and, with TLS, the listener's Certificate, all in `scope`.
 */
export function ferretdbFrontend(scope: Construct, o: FrontendOptions): Frontend {
  const labelsOf = (component: string) => ferretdbLabels(o.name, component, o.labels);
  const postgres = o.postgres;
  const tls = postgres.caSecretName !== undefined
    ? { caSecretName: postgres.caSecretName, caKey: postgres.caKey ?? 'ca.crt' }
    : undefined;
  const podLabels = { [FERRETDB_LABEL]: o.name };
  const writeServiceName = `${o.name}-rw`;
  const readServiceName = `${o.name}-ro`;
  const deployments = [`${o.name}-ferretdb-rw`, ...o.replicas > 0 ? [`${o.name}-ferretdb-ro`] : []];
  const listenerTls = o.ferretdbTls && {
    secretName: o.ferretdbTls._bind(scope, {
      defaultSecretName: `${o.name}-ferretdb-tls`,
      labels: labelsOf('ferretdb'),
      // Resolved at synth, once both Services exist.
      dnsNames: () => serviceHostNames([writeServiceName, readServiceName], Chart.of(scope).namespace),
    }),
  };
  // FerretDB reads its password and TLS files once: a changed one rolls its pods (see
  // certificate-watch.sh).
  const certificateWatch = certificateWatchAccess(scope, {
    name: `${o.name}-ferretdb-cert-watch`, deployments, metadata: { labels: labelsOf('ferretdb') },
  });
  const side = (component: string, deploymentName: string, postgresHost: string, count: number, postgresFallbackHost?: string) => {
    const selector = { [GROUP_LABEL]: deploymentName };
    const objectLabels = labelsOf(component);
    ferretdbDeployment(scope, component === 'writer' ? 'Writer' : 'Reader', {
      name: deploymentName,
      replicas: count,
      selector,
      podLabels: { ...objectLabels, ...podLabels, ...postgres.clientLabels },
      metadataLabels: objectLabels,
      image: o.image,
      postgresHost,
      postgresFallbackHost,
      readOnly: component === 'reader',
      postgresUser: postgres.username,
      poolSize: o.poolSize,
      secretName: postgres.secretName,
      passwordKey: postgres.passwordKey,
      tls,
      listenerTls,
      certificateWatch,
      telemetry: o.telemetry,
      resources: o.resources,
      scheduling: o.scheduling,
    });
    return selector;
  };

  const writerSelector = side('writer', `${o.name}-ferretdb-rw`, postgres.readWriteHost, o.writers);
  kube(k8s.KubeService, scope, 'WriteService', {
    metadata: { name: writeServiceName, labels: labelsOf('write') },
    spec: {
      type: 'ClusterIP',
      selector: writerSelector,
      ports: [{ name: 'mongodb', port: MONGODB_PORT, targetPort: k8s.IntOrString.fromString('mongodb') }],
    },
  });

  // With no replicas the read Service serves reads from the writer side.
  const readerSelector = o.replicas > 0
    // Readers fall back to the primary while no standby is behind the read-only Service.
    ? side('reader', `${o.name}-ferretdb-ro`, postgres.readOnlyHost, o.readers, postgres.readWriteHost)
    : writerSelector;
  const readService = new ReadService(scope, 'ReadService', {
    name: readServiceName,
    selector: readerSelector,
    labels: labelsOf('read'),
  });
  return { writeServiceName, readService, deployments, podLabels, listenerTls: listenerTls !== undefined };
}

/**
 * Only `allowedClients` and `allowedNamespaces` reach FerretDB's MongoDB port, and only
 * `metricsScrapers` its debug port.
 */
export function ferretdbNetworkPolicy(scope: Construct, o: {
  name: string;
  frontend: Frontend;
  allowedClients: k8s.NetworkPolicyPeer[];
  allowedNamespaces: string[];
  metricsScrapers?: k8s.NetworkPolicyPeer[];
  labels?: { [key: string]: string };
}): void {
  const namespaces: k8s.NetworkPolicyPeer[] = o.allowedNamespaces.length > 0
    ? [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: o.allowedNamespaces }] } }]
    : [];
  const ingress: k8s.NetworkPolicyIngressRule[] = [{
    from: [...o.allowedClients, ...namespaces],
    ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(o.frontend.listenerTls ? MONGODB_TLS_PORT : MONGODB_PORT) }],
  }];
  if (o.metricsScrapers && o.metricsScrapers.length > 0) {
    ingress.push({ from: o.metricsScrapers, ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(METRICS_PORT) }] });
  }
  kube(k8s.KubeNetworkPolicy, scope, 'NetworkPolicy', {
    metadata: { name: `${o.name}-ferretdb`, labels: ferretdbLabels(o.name, 'ferretdb', o.labels) },
    spec: { podSelector: { matchLabels: o.frontend.podLabels }, policyTypes: ['Ingress'], ingress },
  });
}

/** A Service's names as clients in and out of its namespace write them. */
export function serviceHostNames(services: string[], namespace: string | undefined): string[] {
  return services.flatMap((name) => namespace
    ? [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`]
    : [name]);
}
