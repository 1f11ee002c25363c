// Who may log in as FerretDB's role and which standbys may acknowledge its commits: the checks
// and renderers of `connectionLimit`, `pinRoleToClientPods` and `syncReplicaElectionConstraint`.
import type { CloudNativePGOptions } from './options';
import { ClusterSpec } from '../../imports/cnpg-cluster-postgresql.cnpg.io';
import { checkInteger, invalid } from '../../private/validation';

/** The name of the `podSelectorRefs` entry that selects the client pods. */
export const CLIENT_POD_SELECTOR = 'ferretdb';

/** The access options, checked. */
export interface CnpgAccess {
  readonly connectionLimit?: number;
  readonly pinRoleToClientPods: boolean;
  readonly syncNodeLabels?: string[];
}

/** A qualified label key (an optional DNS-subdomain prefix and a name of at most 63 characters). */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Checks the access options; throws an error naming the prop and the value. */
export function checkAccess(
  o: CloudNativePGOptions, quorum: number, clientConnections: number, maxConnections: number,
): CnpgAccess {
  let connectionLimit: number | undefined;
  if (o.connectionLimit !== undefined) {
    connectionLimit = checkInteger('connectionLimit', o.connectionLimit, 1);
    if (connectionLimit < clientConnections || connectionLimit > maxConnections) {
      throw invalid('connectionLimit', connectionLimit,
        `from clientConnections (${clientConnections}, what the FerretDB pools may open) to max_connections (${maxConnections})`);
    }
  }
  const pin = o.pinRoleToClientPods ?? false;
  if (typeof pin !== 'boolean') throw invalid('pinRoleToClientPods', pin, 'true or false');
  let syncNodeLabels: string[] | undefined;
  const constraint = o.syncReplicaElectionConstraint;
  if (constraint !== undefined) {
    const labels = constraint?.nodeLabelsAntiAffinity;
    if (!Array.isArray(labels) || labels.length === 0) {
      throw invalid('syncReplicaElectionConstraint.nodeLabelsAntiAffinity', labels, 'at least one node label, such as "topology.kubernetes.io/zone"');
    }
    labels.forEach((label, i) => {
      if (typeof label !== 'string' || !LABEL_KEY.test(label) || label.length > 317) {
        throw invalid(`syncReplicaElectionConstraint.nodeLabelsAntiAffinity[${i}]`, label, 'a label key such as "topology.kubernetes.io/zone"');
      }
      if (labels.indexOf(label) !== i) {
        throw invalid(`syncReplicaElectionConstraint.nodeLabelsAntiAffinity[${i}]`, label, 'a label key not listed before');
      }
    });
    if (quorum === 0) {
      throw invalid('syncReplicaElectionConstraint', constraint,
        'no value without a synchronous quorum (ReplicationMode.synchronousQuorum(k)): it chooses which standbys count in the quorum');
    }
    syncNodeLabels = [...labels];
  }
  return { connectionLimit, pinRoleToClientPods: pin, syncNodeLabels };
}

/**
 * pg_hba rules that admit FerretDB's role from the client pods' IPs only: after CloudNativePG's
 * and cnpgPgHba's rules (the loopback trust for DocumentDB's and pg_cron's own connections comes
 * first), before CloudNativePG's final `host all all all scram-sha-256`.
 */
export function pinnedRoleHba(role: string): string[] {
  return [
    `hostssl all ${role} \${podselector:${CLIENT_POD_SELECTOR}} scram-sha-256`,
    `host all ${role} all reject`,
  ];
}

/** The Cluster spec with the access options applied. */
export function withAccess(
  spec: ClusterSpec, a: CnpgAccess, role: string, clientLabels: { [key: string]: string },
): ClusterSpec {
  const postgresql = spec.postgresql ?? {};
  return {
    ...spec,
    postgresql: {
      ...postgresql,
      pgHba: a.pinRoleToClientPods ? [...postgresql.pgHba ?? [], ...pinnedRoleHba(role)] : postgresql.pgHba,
      syncReplicaElectionConstraint: a.syncNodeLabels && { enabled: true, nodeLabelsAntiAffinity: a.syncNodeLabels },
    },
    podSelectorRefs: a.pinRoleToClientPods ? [{ name: CLIENT_POD_SELECTOR, selector: { matchLabels: clientLabels } }] : undefined,
    managed: a.connectionLimit === undefined ? spec.managed : {
      ...spec.managed,
      roles: (spec.managed?.roles ?? []).map((r) => (r.name === role ? { ...r, connectionLimit: a.connectionLimit } : r)),
    },
  };
}
