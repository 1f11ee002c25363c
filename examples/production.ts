import { Chart, ChartProps } from 'cdk8s';
import { Construct } from 'constructs';
import { Credentials, FerretDBCluster, FerretDBTls, PostgresTls, ReplicationMode } from '../src';

/**
 * A production-style cluster: three replicas with a synchronous quorum (every commit is on the
 * primary and at least one standby), fast SSD storage, an existing Secret, tuned WAL bounds,
 * pinned to database nodes, metrics scraping from the monitoring namespace, and TLS from a
 * cert-manager ClusterIssuer for MongoDB clients and inside the cluster.
 */
export class ProductionChart extends Chart {
  public readonly cluster: FerretDBCluster;

  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, props);
    this.cluster = new FerretDBCluster(this, 'db', {
      name: 'orders',
      replicas: 3,
      replicationMode: ReplicationMode.synchronousQuorum(1),
      credentials: Credentials.fromSecret('orders-db-credentials'),
      storage: { size: '100Gi', storageClassName: 'fast-ssd' },
      wal: { maxSlotWalKeepSize: '20GB', walKeepSize: '1GB' },
      parameters: {
        shared_buffers: '2GB',
        effective_cache_size: '6GB',
      },
      maxConnections: 300,
      ferretdbPoolSize: 30,
      maxReplicationLag: '256MB',
      postgresResources: { cpuRequest: '2', memoryRequest: '8Gi', memoryLimit: '8Gi' },
      ferretdbResources: { cpuRequest: '500m', memoryRequest: '256Mi', memoryLimit: '1Gi' },
      ferretdbWriterReplicas: 3,
      ferretdbReaderReplicas: 3,
      scheduling: {
        nodeSelector: { 'node-role.example.com/database': 'true' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'database', effect: 'NoSchedule' }],
      },
      allowedClients: [{ podSelector: { matchLabels: { 'orders.example.com/db-client': 'true' } } }],
      allowedNamespaces: ['orders-api'],
      metricsScrapers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ferretdbTls: FerretDBTls.certManager({ issuerName: 'internal-ca', issuerKind: 'ClusterIssuer', additionalDnsNames: ['orders-db.example.com'] }),
      postgresTls: PostgresTls.certManager({ issuerName: 'internal-ca', issuerKind: 'ClusterIssuer' }),
    });
  }
}
