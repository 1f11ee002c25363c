import { Chart, ChartProps, Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { BackupSchedule, FerretDBCluster, PostgresBackend, ReplicationMode, RetentionPolicy } from '../src';

/**
 * FerretDB on CloudNativePG: automatic failover by the operator, TLS to PostgreSQL, a
 * synchronous quorum of 1 over 2 standbys, WAL archiving and nightly base backups to an
 * S3-compatible store (Barman Cloud plugin), PodMonitors for Prometheus.
 * Needs CloudNativePG 1.30, the Barman Cloud plugin 0.14 and the Secret `backup-s3` (keys
 * ACCESS_KEY_ID, ACCESS_SECRET_KEY) in the namespace; see the README's "Choosing a backend".
 */
export class CloudNativePGChart extends Chart {
  public readonly cluster: FerretDBCluster;

  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, props);
    const monitoring = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    this.cluster = new FerretDBCluster(this, 'db', {
      name: 'catalog',
      replicas: 2,
      replicationMode: ReplicationMode.synchronousQuorum(1),
      storage: { size: '50Gi' },
      metricsScrapers: monitoring,
      // PodMonitors for FerretDB and the instances (CloudNativePG runs the PostgreSQL exporter).
      monitoring: { podMonitor: true },
      backend: PostgresBackend.cloudNativePG({
        failoverDelay: Duration.seconds(0),
        switchoverDelay: Duration.minutes(10),
        backup: {
          objectStore: {
            destinationPath: 's3://ferretdb-backups/catalog',
            endpointUrl: 'https://minio.storage.svc:9000',
            // The in-cluster MinIO's certificate is signed by a private CA (key ca.crt).
            endpointCA: { secretName: 'minio-ca' },
            credentialsSecret: 'backup-s3',
          },
          schedule: BackupSchedule.daily(2),
          retention: RetentionPolicy.days(14),
        },
      }),
    });
  }
}
