import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { kube } from '../private/kube';
import { metadataLabels } from '../private/labels';
import { defaultName, validateName } from '../private/names';
import { checkInteger, invalid } from '../private/validation';

/** The MongoDB wire protocol port FerretDB listens on. */
export const MONGODB_PORT = 27017;

/**
 * Props of a read-only FerretDB endpoint.
 */
export interface ReadServiceProps {
  /**
   * Labels that select the pods serving reads (for example FerretDB pods connected to
   * PostgreSQL standbys). Use one stable label per workload.
   */
  readonly selector: { [key: string]: string };
  /**
   * The Service's name.
   *
   * @default - derived from the construct path
   */
  readonly name?: string;
  /**
   * @default 27017
   */
  readonly port?: number;
  /**
   * The target port (name or number) on the pods.
   *
   * @default "mongodb"
   */
  readonly targetPort?: string;
  /**
   * Metadata labels (never used in the selector).
   *
   * @default - app.kubernetes.io labels
   */
  readonly labels?: { [key: string]: string };
}

/**
 * A read-only MongoDB endpoint: a ClusterIP Service in front of reader pods.
 */
export class ReadService extends Construct {
  /** The Service's name: the host of read-only connection strings. */
  public readonly serviceName: string;
  public readonly port: number;
  public readonly service: ApiObject;

  constructor(scope: Construct, id: string, props: ReadServiceProps) {
    super(scope, id);
    const selector = props?.selector;
    if (!selector || typeof selector !== 'object' || Object.keys(selector).length === 0) {
      throw invalid('selector', selector, 'at least one label selecting the reader pods');
    }
    this.serviceName = props.name !== undefined ? validateName('name', props.name, 63) : defaultName(this, 63);
    this.port = checkInteger('port', props.port ?? MONGODB_PORT, 1, 65535);
    const target = props.targetPort ?? 'mongodb';
    this.service = kube(k8s.KubeService, this, 'Resource', {
      metadata: {
        name: this.serviceName,
        labels: props.labels ?? metadataLabels({ name: 'ferretdb', instance: this.serviceName, component: 'read' }),
      },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{
          name: 'mongodb',
          port: this.port,
          targetPort: /^\d+$/.test(target) ? k8s.IntOrString.fromNumber(Number(target)) : k8s.IntOrString.fromString(target),
        }],
      },
    });
  }

  /** `host:port` of this endpoint inside the namespace. */
  public get endpoint(): string {
    return `${this.serviceName}:${this.port}`;
  }
}
