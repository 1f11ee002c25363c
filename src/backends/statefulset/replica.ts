import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { headlessService, postgresStatefulSet } from './pod';
import { PostgresPrimary } from './primary';
import { DEFAULT_STORAGE_SIZE, Resources, Scheduling, StorageSettings } from '../../common';
import { POSTGRES_PORT } from '../../postgres/config';
import { kube } from '../../private/kube';
import { defaultName, GROUP_LABEL, MAX_STATEFULSET_NAME, validateName } from '../../private/names';
import { checkResources } from '../../private/pod-spec';
import { checkImage, checkInteger, invalid, parseQuantity } from '../../private/validation';

/**
 * Props of a group of streaming replicas.
 */
export interface StreamingReplicaProps {
  /**
   * The primary the replicas stream from (through its read-write Service).
   */
  readonly primary: PostgresPrimary;
  /**
   * Number of hot standbys in this group; 0 keeps the StatefulSet with no pods.
   *
   * @default 2
   */
  readonly replicas?: number;
  /**
   * Name of the StatefulSet (and its headless Service); pods are `<name>-0`, `<name>-1`, ...
   *
   * @default - derived from the construct path
   */
  readonly name?: string;
  /**
   * Name of the read-only PostgreSQL Service (5432), which selects only this group's pods.
   *
   * @default - `<name>-ro`
   */
  readonly serviceName?: string;
  /**
   * @default - the primary's image
   */
  readonly image?: string;
  /**
   * Volumes should be at least as large as the primary's.
   *
   * @default - the primary's storage settings
   */
  readonly storage?: StorageSettings;
  /**
   * @default - the primary's resources
   */
  readonly resources?: Resources;
  /**
   * @default - pods spread over nodes, away from the other PostgreSQL pods
   */
  readonly scheduling?: Scheduling;
}

/**
 * A group of PostgreSQL hot standbys: an N-pod StatefulSet with a volume claim template, a
 * headless Service and a read-only Service (the primary's PodDisruptionBudgets cover its pods). Each pod clones the primary
 * with pg_basebackup through its own physical replication slot on first start, keeps its data
 * on later starts, and streams from the primary's read-write Service with
 * `application_name` = its pod name.
 */
export class StreamingReplica extends Construct {
  /** Name of the StatefulSet and its headless Service. */
  public readonly name: string;
  /** The read-only PostgreSQL Service (5432) of this group. */
  public readonly serviceName: string;
  public readonly headlessServiceName: string;
  /** Number of hot standbys. */
  public readonly replicas: number;
  /** The pods' names, which are also their `application_name`s. */
  public readonly podNames: string[];
  /** Labels that select this group's pods. */
  public readonly selector: { [key: string]: string };
  public readonly port: number = POSTGRES_PORT;
  public readonly primary: PostgresPrimary;
  public readonly statefulSet: ApiObject;

  constructor(scope: Construct, id: string, props: StreamingReplicaProps) {
    super(scope, id);
    if (!(props?.primary instanceof PostgresPrimary)) {
      throw invalid('primary', props?.primary, 'a PostgresPrimary');
    }
    const primary = props.primary;
    this.primary = primary;
    this.replicas = checkInteger('replicas', props.replicas ?? 2, 0, 100);
    this.name = props.name !== undefined
      ? validateName('name', props.name, MAX_STATEFULSET_NAME)
      : defaultName(this, MAX_STATEFULSET_NAME - 3);
    this.serviceName = validateName('serviceName', props.serviceName ?? `${this.name}-ro`, 63);
    this.headlessServiceName = this.name;
    const image = checkImage('image', props.image ?? primary.image);
    const storage = props.storage ?? primary.storage;
    const volumeBytes = parseQuantity('storage.size', storage.size ?? DEFAULT_STORAGE_SIZE);
    checkResources('resources', props.resources);
    this.selector = { [GROUP_LABEL]: this.name };
    this.podNames = Array.from({ length: this.replicas }, (_, i) => `${this.name}-${i}`);
    primary._registerReplicaGroup({
      podNames: this.podNames, selector: this.selector, volumeBytes, serviceNames: [this.headlessServiceName, this.serviceName],
    });

    const labels = primary._metadataLabels('replica');
    this.statefulSet = postgresStatefulSet(this, 'Resource', {
      name: this.name,
      headlessServiceName: this.headlessServiceName,
      replicas: this.replicas,
      selector: this.selector,
      component: 'replica',
      metadata: { labels, name: this.name },
      podLabels: labels,
      image,
      storage,
      resources: props.resources ?? primary.resources,
      scheduling: props.scheduling,
      cluster: primary._clusterInfo,
    });
    headlessService(this, 'Headless', this.headlessServiceName, { labels }, this.selector);
    kube(k8s.KubeService, this, 'Service', {
      metadata: { labels, name: this.serviceName },
      spec: {
        type: 'ClusterIP',
        selector: this.selector,
        ports: [{ name: 'postgresql', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgresql') }],
      },
    });
  }
}
