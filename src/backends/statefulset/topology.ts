import type { CheckedPrimaryProps } from './primary-props';
import { buildSettings, checkSettings, CONNECTION_HEADROOM } from '../../postgres/config';
import { Setting } from '../../postgres/settings';

/*
 * What depends on every PostgreSQL pod of the cluster (the primary's and each replica group's,
 * registered after the primary): the settings, and the checks made at synth.
 */

/** The cluster's PostgreSQL pods and the smallest of their volumes. */
export interface Topology {
  /** Every PostgreSQL pod, the primary StatefulSet's first. */
  readonly members: string[];
  /** Bytes of the smallest PostgreSQL volume: any pod may become primary. */
  readonly smallestVolumeBytes: number;
}

/** Every postgresql.conf setting with the reason for its value. */
export function clusterSettings(spec: CheckedPrimaryProps, t: Topology): Setting[] {
  return buildSettings({
    wal: spec.wal,
    parameters: spec.parameters,
    volumeBytes: t.smallestVolumeBytes,
    members: t.members,
    synchronousStandbyNames: spec.replicationMode.synchronousStandbyNames(t.members),
    maxConnections: spec.maxConnections ?? spec.clientConnections + CONNECTION_HEADROOM,
    tls: spec.tls !== undefined,
  });
}

/** The errors of a cluster whose pods, quorum, WAL bounds or connections do not fit together. */
export function topologyErrors(spec: CheckedPrimaryProps, t: Topology, settings = clusterSettings(spec, t)): string[] {
  const errors: string[] = [];
  const members = t.members;
  const replicaCount = members.length - 1;
  if (!members.includes(spec.currentPrimary)) {
    errors.push(`Invalid currentPrimary: ${JSON.stringify(spec.currentPrimary)}. Expected one of the PostgreSQL pods: ${members.join(', ')}.`);
  }
  const quorum = spec.replicationMode.synchronousStandbys;
  if (quorum > replicaCount) {
    errors.push(`Invalid replicationMode: ReplicationMode.synchronousQuorum(${quorum}). Expected a quorum of at most the number of replicas (${replicaCount}); commits would never return.`);
  }
  if (t.smallestVolumeBytes < spec.volumeBytes) {
    try {
      checkSettings(spec.wal, spec.parameters, t.smallestVolumeBytes);
    } catch (e) {
      errors.push(`${(e as Error).message} (the smallest PostgreSQL volume is a replica's)`);
    }
  }
  const senders = Number(settings.find((s) => s.name === 'max_wal_senders')?.value);
  const slots = Number(settings.find((s) => s.name === 'max_replication_slots')?.value);
  if (senders < members.length + 1) {
    errors.push(`Invalid wal.maxWalSenders: ${senders}. Expected at least ${members.length + 1} (one per PostgreSQL pod, plus one for a clone).`);
  }
  if (slots < members.length) {
    errors.push(`Invalid wal.maxReplicationSlots: ${slots}. Expected at least ${members.length} (one per PostgreSQL pod).`);
  }
  const needed = spec.clientConnections + CONNECTION_HEADROOM;
  if (spec.maxConnections !== undefined && spec.maxConnections < needed) {
    errors.push(`Invalid maxConnections: ${spec.maxConnections}. Expected at least ${needed}: the clients' ${spec.clientConnections} connections (the FerretDB pools) plus ${CONNECTION_HEADROOM} for DocumentDB, pg_cron, the agent and administrators.`);
  }
  const duplicates = members.filter((m, i) => members.indexOf(m) !== i);
  if (duplicates.length > 0) {
    errors.push(`Invalid name: two PostgreSQL pods would be called ${duplicates.join(', ')}. Expected distinct StatefulSet names.`);
  }
  return errors;
}
