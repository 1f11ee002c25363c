import { Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { checkLeaseDuration, DEFAULT_LEASE_DURATION, LeaseTiming } from './lease';
import type { PostgresPrimaryProps } from './primary';
import { DEFAULT_STORAGE_SIZE, Resources, Scheduling, StorageSettings } from '../../common';
import { DEFAULT_EXPORTER_IMAGE, EXPORTER_ROLE } from '../../observability/metrics';
import { checkSettings, DEFAULT_POSTGRES_IMAGE } from '../../postgres/config';
import { Credentials } from '../../postgres/credentials';
import { ReplicationMode } from '../../postgres/replication-mode';
import { WalSettings } from '../../postgres/settings';
import { PostgresTls } from '../../postgres/tls';
import { defaultName, MAX_STATEFULSET_NAME, validateName } from '../../private/names';
import { checkResources } from '../../private/pod-spec';
import { checkImage, checkInteger, checkRoleName, invalid, parsePostgresSize, parseQuantity } from '../../private/validation';

/**
 * PostgresPrimary's props, checked and with their defaults: what the construct renders from.
 * What depends on the replica groups (registered later) is checked at synth (topology.ts).
 */
export interface CheckedPrimaryProps {
  readonly name: string;
  readonly serviceName: string;
  readonly instance: string;
  readonly labels: { [key: string]: string };
  readonly image: string;
  readonly storage: StorageSettings;
  /** Bytes of the primary's volume. */
  readonly volumeBytes: number;
  readonly resources?: Resources;
  readonly scheduling?: Scheduling;
  readonly replicationMode: ReplicationMode;
  readonly replicationUser: string;
  readonly ferretdbUser: string;
  readonly wal: WalSettings;
  readonly parameters: { [name: string]: string };
  readonly clientConnections: number;
  readonly maxConnections?: number;
  readonly maxReplicationLagBytes: number;
  /** The primary StatefulSet's pod, `<name>-0`. */
  readonly podName: string;
  readonly currentPrimary: string;
  readonly credentials: Credentials;
  readonly secretName: string;
  /** The exporter sidecar's image and resources, with `metricsExporter`. */
  readonly exporter?: { readonly image: string; readonly resources?: Resources };
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  readonly tls?: PostgresTls;
  readonly networkPolicy: boolean;
  /** Seconds the preStop hook's fast shutdown may take. */
  readonly shutdownTimeoutSeconds: number;
  /** The cluster's Lease timing. */
  readonly lease: LeaseTiming;
}

/**
 * Checks every prop of PostgresPrimary in one place, before anything is built; throws an error
 * naming the prop and the value.
 */
export function checkPrimaryProps(scope: Construct, props: PostgresPrimaryProps): CheckedPrimaryProps {
  const name = props.name !== undefined
    ? validateName('name', props.name, MAX_STATEFULSET_NAME)
    : defaultName(scope, MAX_STATEFULSET_NAME - 3);
  const serviceName = validateName('serviceName', props.serviceName ?? `${name}-rw`, 63);
  const image = checkImage('image', props.image ?? DEFAULT_POSTGRES_IMAGE);
  const storage = props.storage ?? {};
  const volumeBytes = parseQuantity('storage.size', storage.size ?? DEFAULT_STORAGE_SIZE);
  checkResources('resources', props.resources);
  const replicationMode = ReplicationMode._check('replicationMode', props.replicationMode ?? ReplicationMode.async());
  const replicationUser = checkRoleName('replicationUser', props.replicationUser ?? 'replicator');
  const ferretdbUser = checkRoleName('ferretdbUser', props.ferretdbUser ?? 'ferretdb');
  if (replicationUser === 'postgres') throw invalid('replicationUser', replicationUser, 'a role other than "postgres" (the superuser)');
  if (ferretdbUser === 'postgres' || ferretdbUser === replicationUser) {
    throw invalid('ferretdbUser', ferretdbUser, 'a role different from replicationUser and from "postgres"');
  }
  for (const [prop, role] of [['replicationUser', replicationUser], ['ferretdbUser', ferretdbUser]]) {
    if (role === EXPORTER_ROLE) throw invalid(prop, role, `a role other than "${EXPORTER_ROLE}" (the metrics exporter's)`);
  }
  const wal = props.wal ?? {};
  const parameters = props.parameters ?? {};
  checkSettings(wal, parameters, volumeBytes);
  const clientConnections = checkInteger('clientConnections', props.clientConnections ?? 70, 0, 100_000);
  const maxConnections = props.maxConnections === undefined ? undefined : checkInteger('maxConnections', props.maxConnections, 1, 262_143);
  const podName = `${name}-0`;
  const credentials = Credentials._check('credentials', props.credentials ?? Credentials.fromGeneratedSecret());
  if (props.metricsExporter) checkResources('metricsExporter.resources', props.metricsExporter.resources);
  const tls = props.tls === undefined ? undefined : PostgresTls._check('tls', props.tls);
  const maxReplicationLagBytes = parsePostgresSize('maxReplicationLag', props.maxReplicationLag ?? '64MB');
  const shutdownTimeoutSeconds = checkShutdownTimeout('shutdownTimeout', props.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT);
  const lease = checkLeaseDuration('leaseDuration', props.leaseDuration ?? DEFAULT_LEASE_DURATION);
  const exporter = props.metricsExporter && {
    image: checkImage('metricsExporter.image', props.metricsExporter.image ?? DEFAULT_EXPORTER_IMAGE),
    resources: props.metricsExporter.resources,
  };
  return {
    name,
    serviceName,
    instance: props.instance ?? name,
    labels: props.labels ?? {},
    image,
    storage,
    volumeBytes,
    resources: props.resources,
    scheduling: props.scheduling,
    replicationMode,
    replicationUser,
    ferretdbUser,
    wal,
    parameters,
    clientConnections,
    maxConnections,
    maxReplicationLagBytes,
    podName,
    currentPrimary: props.currentPrimary ?? podName,
    credentials,
    secretName: credentials.secretName ?? `${name}-credentials`,
    exporter,
    metricsScrapers: props.metricsScrapers,
    tls,
    networkPolicy: props.networkPolicy ?? true,
    shutdownTimeoutSeconds,
    lease,
  };
}

/** The preStop hook's shutdown bound when none is given. */
export const DEFAULT_SHUTDOWN_TIMEOUT = Duration.minutes(5);

/** A shutdown bound in whole seconds, from 10 s to 1 day. */
export function checkShutdownTimeout(prop: string, value: Duration): number {
  if (!(value instanceof Duration)) throw invalid(prop, value, 'a Duration such as Duration.minutes(5)');
  const seconds = value.toSeconds({ integral: false });
  if (!Number.isInteger(seconds) || seconds < 10 || seconds > 86_400) {
    throw invalid(prop, `${seconds}s`, 'a whole number of seconds from 10 to 86400');
  }
  return seconds;
}
