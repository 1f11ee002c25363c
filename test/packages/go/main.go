// The examples' clusters (examples/production.ts, examples/cloudnative-pg.ts) written in Go.
//
// Usage: go run . OUTDIR. Writes OUTDIR/production.yaml and OUTDIR/cloudnative-pg.yaml, each the
// YAML of one App holding one chart; test/packages/go.test.ts compares them byte for byte with
// the TypeScript synth of the same charts.
package main

import (
	"os"
	"path/filepath"

	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdk8s-ferretdb/cdk8s-ferretdb-go/cdk8sferretdb"
	"github.com/cdk8s-team/cdk8s-core-go/cdk8s/v2"
	"github.com/cdk8s-team/cdk8s-plus-go/cdk8splus28/v2/k8s"
)

// monitoringNamespace selects the pods of the "monitoring" namespace (the metrics scrapers).
func monitoringNamespace() *[]*k8s.NetworkPolicyPeer {
	return &[]*k8s.NetworkPolicyPeer{{NamespaceSelector: &k8s.LabelSelector{
		MatchLabels: &map[string]*string{"kubernetes.io/metadata.name": jsii.String("monitoring")},
	}}}
}

// productionChart is examples/production.ts: three replicas, a synchronous quorum, TLS from cert-manager.
func productionChart(scope constructs.Construct, id string, namespace string) cdk8s.Chart {
	chart := cdk8s.NewChart(scope, jsii.String(id), &cdk8s.ChartProps{Namespace: jsii.String(namespace)})
	cdk8sferretdb.NewFerretDBCluster(chart, jsii.String("db"), &cdk8sferretdb.FerretDBClusterProps{
		Name:            jsii.String("orders"),
		Replicas:        jsii.Number(3),
		ReplicationMode: cdk8sferretdb.ReplicationMode_SynchronousQuorum(jsii.Number(1)),
		Credentials:     cdk8sferretdb.Credentials_FromSecret(jsii.String("orders-db-credentials")),
		Storage:         &cdk8sferretdb.StorageSettings{Size: jsii.String("100Gi"), StorageClassName: jsii.String("fast-ssd")},
		Wal:             &cdk8sferretdb.WalSettings{MaxSlotWalKeepSize: jsii.String("20GB"), WalKeepSize: jsii.String("1GB")},
		Parameters: &map[string]*string{
			"shared_buffers":       jsii.String("2GB"),
			"effective_cache_size": jsii.String("6GB"),
		},
		MaxConnections:         jsii.Number(300),
		FerretdbPoolSize:       jsii.Number(30),
		MaxReplicationLag:      jsii.String("256MB"),
		PostgresResources:      &cdk8sferretdb.Resources{CpuRequest: jsii.String("2"), MemoryRequest: jsii.String("8Gi"), MemoryLimit: jsii.String("8Gi")},
		FerretdbResources:      &cdk8sferretdb.Resources{CpuRequest: jsii.String("500m"), MemoryRequest: jsii.String("256Mi"), MemoryLimit: jsii.String("1Gi")},
		FerretdbWriterReplicas: jsii.Number(3),
		FerretdbReaderReplicas: jsii.Number(3),
		Scheduling: &cdk8sferretdb.Scheduling{
			NodeSelector: &map[string]*string{"node-role.example.com/database": jsii.String("true")},
			Tolerations: &[]*k8s.Toleration{{
				Key: jsii.String("dedicated"), Operator: jsii.String("Equal"), Value: jsii.String("database"), Effect: jsii.String("NoSchedule"),
			}},
		},
		AllowedClients: &[]*k8s.NetworkPolicyPeer{{PodSelector: &k8s.LabelSelector{
			MatchLabels: &map[string]*string{"orders.example.com/db-client": jsii.String("true")},
		}}},
		AllowedNamespaces: jsii.Strings("orders-api"),
		MetricsScrapers:   monitoringNamespace(),
		FerretdbTls: cdk8sferretdb.FerretDBTls_CertManager(&cdk8sferretdb.FerretDBTlsCertManagerOptions{
			IssuerName: jsii.String("internal-ca"), IssuerKind: jsii.String("ClusterIssuer"),
			AdditionalDnsNames: jsii.Strings("orders-db.example.com"),
		}),
		PostgresTls: cdk8sferretdb.PostgresTls_CertManager(&cdk8sferretdb.PostgresTlsCertManagerOptions{
			IssuerName: jsii.String("internal-ca"), IssuerKind: jsii.String("ClusterIssuer"),
		}),
	})
	return chart
}

// cloudNativePGChart is examples/cloudnative-pg.ts: the operator's Cluster, backups, PodMonitors.
func cloudNativePGChart(scope constructs.Construct, id string, namespace string) cdk8s.Chart {
	chart := cdk8s.NewChart(scope, jsii.String(id), &cdk8s.ChartProps{Namespace: jsii.String(namespace)})
	cdk8sferretdb.NewFerretDBCluster(chart, jsii.String("db"), &cdk8sferretdb.FerretDBClusterProps{
		Name:            jsii.String("catalog"),
		Replicas:        jsii.Number(2),
		ReplicationMode: cdk8sferretdb.ReplicationMode_SynchronousQuorum(jsii.Number(1)),
		Storage:         &cdk8sferretdb.StorageSettings{Size: jsii.String("50Gi")},
		MetricsScrapers: monitoringNamespace(),
		Monitoring:      &cdk8sferretdb.MonitoringOptions{PodMonitor: jsii.Bool(true)},
		Backend: cdk8sferretdb.PostgresBackend_CloudNativePG(&cdk8sferretdb.CloudNativePGOptions{
			FailoverDelay:   cdk8s.Duration_Seconds(jsii.Number(0)),
			SwitchoverDelay: cdk8s.Duration_Minutes(jsii.Number(10)),
			Backup: &cdk8sferretdb.BackupSettings{
				ObjectStore: &cdk8sferretdb.ObjectStoreSettings{
					DestinationPath:   jsii.String("s3://ferretdb-backups/catalog"),
					EndpointUrl:       jsii.String("https://minio.storage.svc:9000"),
					EndpointCA:        &cdk8sferretdb.CaCertificateSecret{SecretName: jsii.String("minio-ca")},
					CredentialsSecret: jsii.String("backup-s3"),
				},
				Schedule:  cdk8sferretdb.BackupSchedule_Daily(jsii.Number(2)),
				Retention: cdk8sferretdb.RetentionPolicy_Days(jsii.Number(14)),
			},
		}),
	})
	return chart
}

func main() {
	outdir := os.Args[1]
	charts := []struct {
		name string
		make func(app cdk8s.App)
	}{
		{"production", func(app cdk8s.App) { productionChart(app, "production", "orders") }},
		{"cloudnative-pg", func(app cdk8s.App) { cloudNativePGChart(app, "cloudnative-pg", "catalog") }},
	}
	for _, c := range charts {
		app := cdk8s.NewApp(nil)
		c.make(app)
		if err := os.WriteFile(filepath.Join(outdir, c.name+".yaml"), []byte(*app.SynthYaml()), 0o644); err != nil {
			panic(err)
		}
	}
}
