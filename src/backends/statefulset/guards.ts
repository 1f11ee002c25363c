import { Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { EXPORTER_PORT } from '../../observability/metrics';
import { POSTGRES_PORT } from '../../postgres/config';
import { kube } from '../../private/kube';
import { POD_NAME_LABEL } from '../../private/names';

type Metadata = { labels: { [key: string]: string } };

/**
 * One budget for the current primary, one for every other member (whichever StatefulSet its pod
 * belongs to): each pod is under exactly one, and both follow currentPrimary. Draining the
 * primary's node waits for a switchover (README); with no standby to switch to it proceeds.
 */
export function disruptionBudgets(scope: Construct, o: {
  name: string;
  primaryMetadata: Metadata;
  standbyMetadata: Metadata;
  memberLabels: { [key: string]: string };
  primarySelector: () => { [key: string]: string };
  currentPrimary: string;
  hasStandbys: () => boolean;
}): void {
  kube(k8s.KubePodDisruptionBudget, scope, 'Budget', {
    metadata: { ...o.primaryMetadata, name: o.name },
    spec: {
      minAvailable: Lazy.any({ produce: () => k8s.IntOrString.fromNumber(o.hasStandbys() ? 1 : 0) }) as any,
      selector: { matchLabels: Lazy.any({ produce: () => o.primarySelector() }) as any },
    },
  });
  kube(k8s.KubePodDisruptionBudget, scope, 'StandbyBudget', {
    metadata: { ...o.standbyMetadata, name: `${o.name}-standbys` },
    spec: {
      maxUnavailable: k8s.IntOrString.fromNumber(1),
      selector: {
        matchLabels: o.memberLabels,
        matchExpressions: [{ key: POD_NAME_LABEL, operator: 'NotIn', values: Lazy.any({ produce: () => [o.currentPrimary] }) as any }],
      },
    },
  });
}

/** Only the cluster's PostgreSQL pods and its clients reach 5432; only `metricsScrapers` reach the exporter. */
export function postgresNetworkPolicy(scope: Construct, o: {
  name: string;
  metadata: Metadata;
  memberLabels: { [key: string]: string };
  clientLabels: { [key: string]: string };
  metricsScrapers?: k8s.NetworkPolicyPeer[];
}): void {
  kube(k8s.KubeNetworkPolicy, scope, 'NetworkPolicy', {
    metadata: { ...o.metadata, name: `${o.name}-postgresql` },
    spec: {
      podSelector: { matchLabels: o.memberLabels },
      policyTypes: ['Ingress'],
      ingress: [{
        from: [{ podSelector: { matchLabels: o.memberLabels } }, { podSelector: { matchLabels: o.clientLabels } }],
        ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(POSTGRES_PORT) }],
      }, ...o.metricsScrapers?.length ? [{
        from: o.metricsScrapers,
        ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(EXPORTER_PORT) }],
      }] : []],
    },
  });
}
