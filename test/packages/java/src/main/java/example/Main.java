package example;

import io.github.cdk8sferretdb.BackupSchedule;
import io.github.cdk8sferretdb.BackupSettings;
import io.github.cdk8sferretdb.CaCertificateSecret;
import io.github.cdk8sferretdb.CloudNativePGOptions;
import io.github.cdk8sferretdb.Credentials;
import io.github.cdk8sferretdb.FerretDBCluster;
import io.github.cdk8sferretdb.FerretDBTls;
import io.github.cdk8sferretdb.FerretDBTlsCertManagerOptions;
import io.github.cdk8sferretdb.MonitoringOptions;
import io.github.cdk8sferretdb.ObjectStoreSettings;
import io.github.cdk8sferretdb.PostgresBackend;
import io.github.cdk8sferretdb.PostgresTls;
import io.github.cdk8sferretdb.PostgresTlsCertManagerOptions;
import io.github.cdk8sferretdb.ReplicationMode;
import io.github.cdk8sferretdb.Resources;
import io.github.cdk8sferretdb.RetentionPolicy;
import io.github.cdk8sferretdb.Scheduling;
import io.github.cdk8sferretdb.StorageSettings;
import io.github.cdk8sferretdb.WalSettings;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.cdk8s.App;
import org.cdk8s.Chart;
import org.cdk8s.ChartProps;
import org.cdk8s.Duration;
import org.cdk8s.plus28.k8s.LabelSelector;
import org.cdk8s.plus28.k8s.NetworkPolicyPeer;
import org.cdk8s.plus28.k8s.Toleration;
import software.constructs.Construct;

/**
 * The examples' clusters (examples/production.ts, examples/cloudnative-pg.ts) written in Java.
 *
 * <p>Usage: Main OUTDIR. Writes OUTDIR/production.yaml and OUTDIR/cloudnative-pg.yaml, each the
 * YAML of one App holding one chart; test/packages/java.test.ts compares them byte for byte with
 * the TypeScript synth of the same charts.
 */
public final class Main {
  /** The pods of the "monitoring" namespace (the metrics scrapers). */
  static List<NetworkPolicyPeer> monitoringNamespace() {
    return List.of(NetworkPolicyPeer.builder()
        .namespaceSelector(LabelSelector.builder().matchLabels(Map.of("kubernetes.io/metadata.name", "monitoring")).build())
        .build());
  }

  /** examples/production.ts: three replicas, a synchronous quorum, TLS from cert-manager. */
  static final class ProductionChart extends Chart {
    ProductionChart(Construct scope, String id, String namespace) {
      super(scope, id, ChartProps.builder().namespace(namespace).build());
      FerretDBCluster.Builder.create(this, "db")
          .name("orders")
          .replicas(3)
          .replicationMode(ReplicationMode.synchronousQuorum(1))
          .credentials(Credentials.fromSecret("orders-db-credentials"))
          .storage(StorageSettings.builder().size("100Gi").storageClassName("fast-ssd").build())
          .wal(WalSettings.builder().maxSlotWalKeepSize("20GB").walKeepSize("1GB").build())
          .parameters(Map.of("shared_buffers", "2GB", "effective_cache_size", "6GB"))
          .maxConnections(300)
          .ferretdbPoolSize(30)
          .maxReplicationLag("256MB")
          .postgresResources(Resources.builder().cpuRequest("2").memoryRequest("8Gi").memoryLimit("8Gi").build())
          .ferretdbResources(Resources.builder().cpuRequest("500m").memoryRequest("256Mi").memoryLimit("1Gi").build())
          .ferretdbWriterReplicas(3)
          .ferretdbReaderReplicas(3)
          .scheduling(Scheduling.builder()
              .nodeSelector(Map.of("node-role.example.com/database", "true"))
              .tolerations(List.of(Toleration.builder().key("dedicated").operator("Equal").value("database").effect("NoSchedule").build()))
              .build())
          .allowedClients(List.of(NetworkPolicyPeer.builder()
              .podSelector(LabelSelector.builder().matchLabels(Map.of("orders.example.com/db-client", "true")).build())
              .build()))
          .allowedNamespaces(List.of("orders-api"))
          .metricsScrapers(monitoringNamespace())
          .ferretdbTls(FerretDBTls.certManager(FerretDBTlsCertManagerOptions.builder()
              .issuerName("internal-ca").issuerKind("ClusterIssuer").additionalDnsNames(List.of("orders-db.example.com")).build()))
          .postgresTls(PostgresTls.certManager(PostgresTlsCertManagerOptions.builder()
              .issuerName("internal-ca").issuerKind("ClusterIssuer").build()))
          .build();
    }
  }

  /** examples/cloudnative-pg.ts: the operator's Cluster, backups to an object store, PodMonitors. */
  static final class CloudNativePGChart extends Chart {
    CloudNativePGChart(Construct scope, String id, String namespace) {
      super(scope, id, ChartProps.builder().namespace(namespace).build());
      FerretDBCluster.Builder.create(this, "db")
          .name("catalog")
          .replicas(2)
          .replicationMode(ReplicationMode.synchronousQuorum(1))
          .storage(StorageSettings.builder().size("50Gi").build())
          .metricsScrapers(monitoringNamespace())
          .monitoring(MonitoringOptions.builder().podMonitor(true).build())
          .backend(PostgresBackend.cloudNativePG(CloudNativePGOptions.builder()
              .failoverDelay(Duration.seconds(0))
              .switchoverDelay(Duration.minutes(10))
              .backup(BackupSettings.builder()
                  .objectStore(ObjectStoreSettings.builder()
                      .destinationPath("s3://ferretdb-backups/catalog")
                      .endpointUrl("https://minio.storage.svc:9000")
                      .endpointCa(CaCertificateSecret.builder().secretName("minio-ca").build())
                      .credentialsSecret("backup-s3")
                      .build())
                  .schedule(BackupSchedule.daily(2))
                  .retention(RetentionPolicy.days(14))
                  .build())
              .build()))
          .build();
    }
  }

  public static void main(String[] args) throws IOException {
    Path outdir = Path.of(args[0]);
    App production = new App();
    new ProductionChart(production, "production", "orders");
    Files.writeString(outdir.resolve("production.yaml"), production.synthYaml(), StandardCharsets.UTF_8);
    App cnpg = new App();
    new CloudNativePGChart(cnpg, "cloudnative-pg", "catalog");
    Files.writeString(outdir.resolve("cloudnative-pg.yaml"), cnpg.synthYaml(), StandardCharsets.UTF_8);
  }
}
