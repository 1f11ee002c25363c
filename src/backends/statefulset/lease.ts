import { Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { BOOTSTRAP_IMAGE } from '../../postgres/credentials-bootstrap';
import { API_TOKEN_DIR, API_TOKEN_MOUNT, containerSecurityContext, renderResources, SMALL_SIDECAR_RESOURCES } from '../../private/pod-spec';
import { invalid } from '../../private/validation';

/*
 * The cluster's Lease (coordination.k8s.io/v1): only the pod that holds it runs as primary. The
 * `lease` sidecar of every PostgreSQL pod (lease.sh) takes it for the pod the `leader` key names
 * and renews it; postgres.sh (fencing.sh) stops a primary whose last renewal is older than the
 * renew deadline, a bound shorter than the duration after which a candidate takes an unrenewed
 * Lease: never two primaries, with no reliance on the nodes' clocks agreeing.
 */

/** The lease duration when none is given (CloudNativePG's default too). */
export const DEFAULT_LEASE_DURATION = Duration.seconds(15);
/** Seconds between two renewals (and two reads of a candidate waiting for the Lease). */
export const LEASE_RETRY_SECONDS = 2;

/** The Lease timing of a cluster, in whole seconds. */
export interface LeaseTiming {
  /** A candidate takes a Lease it saw unrenewed for this long (its own clock). */
  readonly durationSeconds: number;
  /** A primary stops taking writes once its last successful renewal is this old: 2/3 of the duration. */
  readonly renewDeadlineSeconds: number;
}

/** A lease duration in whole seconds from 6 s (three renewals fit in the renew deadline) to 10 min. */
export function checkLeaseDuration(prop: string, value: Duration): LeaseTiming {
  if (!(value instanceof Duration)) throw invalid(prop, value, 'a Duration such as Duration.seconds(15)');
  const seconds = value.toSeconds({ integral: false });
  if (!Number.isInteger(seconds) || seconds < 6 || seconds > 600) {
    throw invalid(prop, `${seconds}s`, 'a whole number of seconds from 6 to 600');
  }
  return { durationSeconds: seconds, renewDeadlineSeconds: Math.floor(seconds * 2 / 3) };
}

/** What the pods of a cluster need to take part in the Lease. */
export interface LeaseInfo extends LeaseTiming {
  /** The Lease, also the name of its Role and RoleBinding. */
  readonly leaseName: string;
  /** The ServiceAccount of the replica groups' pods (the primary StatefulSet's pod has its own). */
  readonly standbyServiceAccountName: string;
}

/**
 * The Lease, the ServiceAccount of the replica groups' pods, and a Role allowing `get` and
 * `patch` (a merge patch whose resourceVersion makes it a compare-and-swap) on that one Lease,
 * bound to both ServiceAccounts. Only the `lease` sidecars mount a token.
 */
export function clusterLease(scope: Construct, o: {
  name: string; primaryServiceAccountName: string; timing: LeaseTiming; metadata: { labels: { [key: string]: string } };
}): LeaseInfo {
  const leaseName = `${o.name}-leader`;
  const standbyServiceAccountName = `${o.name}-standby`;
  const metadata = { ...o.metadata, name: leaseName };
  // No holder: kubectl apply keeps the holder, renew time and transitions the sidecars write.
  new k8s.KubeLease(scope, 'Lease', {
    metadata: {
      ...metadata,
      annotations: { 'ferretdb.cdk8s.io/note': 'held by the PostgreSQL primary; written by the lease sidecars (README: promotion runbook)' },
    },
    spec: { leaseDurationSeconds: o.timing.durationSeconds },
  });
  new k8s.KubeServiceAccount(scope, 'StandbyServiceAccount', {
    metadata: { ...o.metadata, name: standbyServiceAccountName }, automountServiceAccountToken: false,
  });
  new k8s.KubeRole(scope, 'LeaseRole', {
    metadata,
    rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [leaseName], verbs: ['get', 'patch'] }],
  });
  new k8s.KubeRoleBinding(scope, 'LeaseRoleBinding', {
    metadata,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: leaseName },
    subjects: [o.primaryServiceAccountName, standbyServiceAccountName].map((name) => ({ kind: 'ServiceAccount', name })),
  });
  return { ...o.timing, leaseName, standbyServiceAccountName };
}

/** The `lease` sidecar of a PostgreSQL pod; `mounts`: the ConfigMap's and STATE_DIR's. */
export function leaseContainer(lease: LeaseInfo, o: { configDir: string; stateDir: string; mounts: k8s.VolumeMount[] }): k8s.Container {
  const env = (name: string, value: string): k8s.EnvVar => ({ name, value });
  return {
    name: 'lease',
    image: BOOTSTRAP_IMAGE,
    imagePullPolicy: 'IfNotPresent',
    command: ['sh', `${o.configDir}/lease.sh`],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      env('CONFIG_DIR', o.configDir),
      env('STATE_DIR', o.stateDir),
      env('TOKEN_DIR', API_TOKEN_DIR),
      env('LEASE_NAME', lease.leaseName),
      env('LEASE_DURATION', String(lease.durationSeconds)),
      env('LEASE_RETRY', String(LEASE_RETRY_SECONDS)),
    ],
    volumeMounts: [...o.mounts, API_TOKEN_MOUNT],
    resources: renderResources(undefined, SMALL_SIDECAR_RESOURCES),
    securityContext: containerSecurityContext(),
  };
}

/** The postgres container's side of the Lease (fencing.sh). */
export function leaseEnv(lease: LeaseInfo): k8s.EnvVar[] {
  return [
    { name: 'LEASE_DURATION', value: String(lease.durationSeconds) },
    { name: 'LEASE_RENEW_DEADLINE', value: String(lease.renewDeadlineSeconds) },
  ];
}
