"""The examples' clusters (examples/production.ts, examples/cloudnative-pg.ts) written in Python.

Usage: python app.py OUTDIR. Writes OUTDIR/production.yaml and OUTDIR/cloudnative-pg.yaml, each
the YAML of one App holding one chart; test/packages/python.test.ts compares them byte for byte
with the TypeScript synth of the same charts.
"""
import os
import sys

from cdk8s import App, Chart, Duration
from cdk8s_plus_28 import k8s
from constructs import Construct

from cdk8s_ferretdb import (
    BackupSchedule,
    BackupSettings,
    CaCertificateSecret,
    Credentials,
    FerretDBCluster,
    FerretDBTls,
    MonitoringOptions,
    ObjectStoreSettings,
    PostgresBackend,
    PostgresTls,
    ReplicationMode,
    Resources,
    RetentionPolicy,
    Scheduling,
    StorageSettings,
    WalSettings,
)


class ProductionChart(Chart):
    """examples/production.ts: three replicas, a synchronous quorum, TLS from cert-manager."""

    def __init__(self, scope: Construct, id: str, *, namespace: str) -> None:
        super().__init__(scope, id, namespace=namespace)
        self.cluster = FerretDBCluster(
            self, "db",
            name="orders",
            replicas=3,
            replication_mode=ReplicationMode.synchronous_quorum(1),
            credentials=Credentials.from_secret("orders-db-credentials"),
            storage=StorageSettings(size="100Gi", storage_class_name="fast-ssd"),
            wal=WalSettings(max_slot_wal_keep_size="20GB", wal_keep_size="1GB"),
            parameters={"shared_buffers": "2GB", "effective_cache_size": "6GB"},
            max_connections=300,
            ferretdb_pool_size=30,
            max_replication_lag="256MB",
            postgres_resources=Resources(cpu_request="2", memory_request="8Gi", memory_limit="8Gi"),
            ferretdb_resources=Resources(cpu_request="500m", memory_request="256Mi", memory_limit="1Gi"),
            ferretdb_writer_replicas=3,
            ferretdb_reader_replicas=3,
            scheduling=Scheduling(
                node_selector={"node-role.example.com/database": "true"},
                tolerations=[k8s.Toleration(key="dedicated", operator="Equal", value="database", effect="NoSchedule")],
            ),
            allowed_clients=[k8s.NetworkPolicyPeer(
                pod_selector=k8s.LabelSelector(match_labels={"orders.example.com/db-client": "true"}))],
            allowed_namespaces=["orders-api"],
            metrics_scrapers=[k8s.NetworkPolicyPeer(
                namespace_selector=k8s.LabelSelector(match_labels={"kubernetes.io/metadata.name": "monitoring"}))],
            ferretdb_tls=FerretDBTls.cert_manager(
                issuer_name="internal-ca", issuer_kind="ClusterIssuer",
                additional_dns_names=["orders-db.example.com"]),
            postgres_tls=PostgresTls.cert_manager(issuer_name="internal-ca", issuer_kind="ClusterIssuer"),
        )


class CloudNativePGChart(Chart):
    """examples/cloudnative-pg.ts: the operator's Cluster, backups to an object store, PodMonitors."""

    def __init__(self, scope: Construct, id: str, *, namespace: str) -> None:
        super().__init__(scope, id, namespace=namespace)
        monitoring = [k8s.NetworkPolicyPeer(
            namespace_selector=k8s.LabelSelector(match_labels={"kubernetes.io/metadata.name": "monitoring"}))]
        self.cluster = FerretDBCluster(
            self, "db",
            name="catalog",
            replicas=2,
            replication_mode=ReplicationMode.synchronous_quorum(1),
            storage=StorageSettings(size="50Gi"),
            metrics_scrapers=monitoring,
            monitoring=MonitoringOptions(pod_monitor=True),
            backend=PostgresBackend.cloud_native_pg(
                failover_delay=Duration.seconds(0),
                switchover_delay=Duration.minutes(10),
                backup=BackupSettings(
                    object_store=ObjectStoreSettings(
                        destination_path="s3://ferretdb-backups/catalog",
                        endpoint_url="https://minio.storage.svc:9000",
                        endpoint_ca=CaCertificateSecret(secret_name="minio-ca"),
                        credentials_secret="backup-s3",
                    ),
                    schedule=BackupSchedule.daily(2),
                    retention=RetentionPolicy.days(14),
                ),
            ),
        )


def main(outdir: str) -> None:
    charts = {
        "production": lambda app: ProductionChart(app, "production", namespace="orders"),
        "cloudnative-pg": lambda app: CloudNativePGChart(app, "cloudnative-pg", namespace="catalog"),
    }
    for name, make in charts.items():
        app = App()
        make(app)
        with open(os.path.join(outdir, f"{name}.yaml"), "w", encoding="utf-8") as out:
            out.write(app.synth_yaml())


if __name__ == "__main__":
    main(sys.argv[1])
