import { Names } from 'cdk8s';
import { Construct } from 'constructs';
import { invalid } from './validation';

/** Label that selects the pods of exactly one construct (StatefulSet, Deployment, Service selectors). */
export const GROUP_LABEL = 'ferretdb.cdk8s.io/group';
/** Label on every PostgreSQL pod of one cluster; its value is the primary's name. */
export const POSTGRES_CLUSTER_LABEL = 'ferretdb.cdk8s.io/postgres';
/** Label on pods allowed to reach PostgreSQL (5432) through the cluster's NetworkPolicy; value: the primary's name. */
export const POSTGRES_CLIENT_LABEL = 'ferretdb.cdk8s.io/postgres-client';
/** Label Kubernetes puts on every StatefulSet pod. */
export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';

/** Prefix of the physical replication slots the cluster manages (and may drop). */
export const SLOT_PREFIX = 'fdb_';

/** A StatefulSet name above 52 characters breaks its pods' controller-revision-hash label. */
export const MAX_STATEFULSET_NAME = 52;

const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The physical replication slot of a pod: `fdb_` + the pod name, lower case, every character
 * outside `[a-z0-9_]` replaced by `_`, cut at 63 bytes. `lib.sh` computes the same in the pods.
 */
export function slotNameForPod(podName: string): string {
  return (SLOT_PREFIX + podName.toLowerCase().replace(/[^a-z0-9_]/g, '_')).slice(0, 63);
}

/** Checks a user-supplied object name (DNS-1035 label: valid for Services too). */
export function validateName(prop: string, value: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength || !DNS_1035.test(value)) {
    throw invalid(prop, value,
      `a lower-case DNS-1035 label of at most ${maxLength} characters (letters, digits and '-', starting with a letter)`);
  }
  return value;
}

/**
 * A stable, unique default name for a construct (chart + path + hash), short enough for every
 * object derived from it.
 */
export function defaultName(scope: Construct, maxLength: number): string {
  // Construct ids may hold characters that object names may not ("_", ".", upper case).
  let name = Names.toDnsLabel(scope, { maxLen: maxLength }).toLowerCase().replace(/[^a-z0-9-]/g, '-')
    .replace(/-+/g, '-').replace(/^-+|-+$/g, '');
  if (!/^[a-z]/.test(name)) {
    name = ('x' + name).slice(0, maxLength).replace(/-+$/, '');
  }
  return name;
}
