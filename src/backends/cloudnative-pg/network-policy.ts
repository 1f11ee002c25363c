// The NetworkPolicy of a CloudNativePG cluster's instances (pure: rendered from checked props).
import { k8s } from 'cdk8s-plus-28';
import { CNPG_CLUSTER_LABEL, CNPG_PORTS } from './cluster-spec';

export interface CnpgNetworkPolicyInput {
  readonly clusterName: string;
  /** Labels of the pods that may reach PostgreSQL (5432): FerretDB's. */
  readonly clientLabels: { [key: string]: string };
  readonly operatorNamespace: string;
  readonly operatorLabels: { [key: string]: string };
  /** Who may reach the exporter (9187). */
  readonly metricsScrapers?: k8s.NetworkPolicyPeer[];
  /** Who else may reach the instance manager's status port (8000), e.g. the API server. */
  readonly statusClients?: k8s.NetworkPolicyPeer[];
}

/**
 * Ingress to the instances: 5432 from the clients; 5432 and 8000 from the cluster's own pods
 * (streaming, pg_rewind, status; the operator's initdb and join Jobs) and from the operator;
 * 9187 from the scrapers; 8000 from the status clients.
 */
export function cnpgNetworkPolicySpec(i: CnpgNetworkPolicyInput): k8s.NetworkPolicySpec {
  const tcp = (...ports: number[]) => ports.map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }));
  const instanceLabels = { [CNPG_CLUSTER_LABEL]: i.clusterName };
  const ingress: k8s.NetworkPolicyIngressRule[] = [
    { from: [{ podSelector: { matchLabels: i.clientLabels } }], ports: tcp(CNPG_PORTS.postgresql) },
    { from: [{ podSelector: { matchLabels: instanceLabels } }], ports: tcp(CNPG_PORTS.postgresql, CNPG_PORTS.status) },
    {
      from: [{
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': i.operatorNamespace } },
        podSelector: { matchLabels: i.operatorLabels },
      }],
      ports: tcp(CNPG_PORTS.status, CNPG_PORTS.postgresql),
    },
  ];
  if (i.metricsScrapers && i.metricsScrapers.length > 0) ingress.push({ from: i.metricsScrapers, ports: tcp(CNPG_PORTS.metrics) });
  if (i.statusClients && i.statusClients.length > 0) ingress.push({ from: i.statusClients, ports: tcp(CNPG_PORTS.status) });
  return { podSelector: { matchLabels: instanceLabels }, policyTypes: ['Ingress'], ingress };
}
