// The whole cluster, and the seam between FerretDB and the PostgreSQL backends.
export * from './cluster';
export * from './postgres-backend';
export * from './common';

// FerretDB: the read Service and the listener's TLS.
export * from './ferretdb/read-service';
export { FerretDBTls } from './ferretdb/tls';
export type { FerretDBTlsCertManagerOptions } from './ferretdb/tls';

// What both backends share.
export * from './postgres/connection';
export * from './postgres/credentials';
export * from './postgres/replication-mode';
export * from './postgres/settings';
export { PostgresTls } from './postgres/tls';
export type { PostgresTlsCertManagerOptions } from './postgres/tls';

// The StatefulSet backend.
export * from './backends/statefulset/primary';
export * from './backends/statefulset/replica';
export { slotNameForPod } from './private/names';

// The CloudNativePG backend.
export * from './backends/cloudnative-pg/cluster';
export * from './backends/cloudnative-pg/options';
export * from './backends/cloudnative-pg/object-store-credentials';

// Metrics and alerts.
export * from './observability/monitoring';
