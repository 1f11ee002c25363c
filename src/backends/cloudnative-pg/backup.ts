// On-demand base backups of a CloudNativePG cluster (a `Backup` through the Barman Cloud plugin).
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { BARMAN_CLOUD_PLUGIN } from './cluster-spec';
import { Backup, BackupSpecMethod } from '../../imports/cnpg-backup-postgresql.cnpg.io';
import { invalid } from '../../private/validation';

/** Longest name of an object Kubernetes keeps in a label value (CloudNativePG labels a backup's objects with it). */
const MAX_BACKUP_NAME = 63;

export interface OnDemandBackupInput {
  readonly clusterName: string;
  /** The Backup's name is `<clusterName>-<suffix>`. */
  readonly suffix: string;
  /** Whether the cluster archives to an object store (`backup` is set). */
  readonly backupConfigured: boolean;
  readonly labels: { [key: string]: string };
}

/** The name of an on-demand Backup; throws naming the suffix when it would not be a valid name. */
export function onDemandBackupName(clusterName: string, suffix: string): string {
  const name = `${clusterName}-${suffix}`;
  if (typeof suffix !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(suffix) || name.length > MAX_BACKUP_NAME) {
    throw invalid('addBackup suffix', suffix,
      `lower-case letters, digits and '-' (not at either end), at most ${MAX_BACKUP_NAME - clusterName.length - 1} characters `
      + `(the Backup is named ${clusterName}-<suffix>, at most ${MAX_BACKUP_NAME})`);
  }
  return name;
}

/**
 * A `Backup` of the cluster through the Barman Cloud plugin, to the ObjectStore its WAL goes to.
 * CloudNativePG takes it once, when the object is created (applying it again changes nothing).
 */
export function onDemandBackup(scope: Construct, id: string, i: OnDemandBackupInput): ApiObject {
  if (!i.backupConfigured) {
    throw invalid('addBackup', i.suffix, 'a cluster with backup settings (backup: { objectStore, ... }): an on-demand Backup goes to its ObjectStore');
  }
  return new Backup(scope, id, {
    metadata: { name: onDemandBackupName(i.clusterName, i.suffix), labels: i.labels },
    spec: {
      cluster: { name: i.clusterName },
      method: BackupSpecMethod.PLUGIN,
      pluginConfiguration: { name: BARMAN_CLOUD_PLUGIN },
    },
  });
}
