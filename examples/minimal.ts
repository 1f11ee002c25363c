import { Chart, ChartProps } from 'cdk8s';
import { Construct } from 'constructs';
import { FerretDBCluster } from '../src';

/**
 * The smallest useful cluster: a primary, two streaming replicas, FerretDB on each side,
 * generated credentials. Connect with mongodb://ferretdb:<password>@<cluster>-rw:27017/.
 */
export class MinimalChart extends Chart {
  public readonly cluster: FerretDBCluster;

  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, props);
    this.cluster = new FerretDBCluster(this, 'db', { name: 'app-db' });
  }
}
