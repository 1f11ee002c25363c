/** The `app.kubernetes.io/*` labels of an object (metadata only, never selectors). */
export interface AppLabels {
  readonly name: string;
  readonly instance: string;
  readonly component: string;
}

export function metadataLabels(app: AppLabels, extra: { [key: string]: string } = {}): { [key: string]: string } {
  return {
    ...extra,
    'app.kubernetes.io/name': app.name,
    'app.kubernetes.io/instance': app.instance,
    'app.kubernetes.io/component': app.component,
    'app.kubernetes.io/part-of': 'ferretdb',
    'app.kubernetes.io/managed-by': 'cdk8s-ferretdb',
  };
}
