import { App, YamlOutputType } from 'cdk8s';
import { CloudNativePGChart } from './cloudnative-pg';
import { MinimalChart } from './minimal';
import { ProductionChart } from './production';

// `npm run synth` (or `cdk8s synth`) writes one YAML file per chart to dist/.
// outdir: dist/, or what `cdk8s synth` asks for (CDK8S_OUTDIR).
const app = new App({ yamlOutputType: YamlOutputType.FILE_PER_CHART });
new MinimalChart(app, 'minimal');
new ProductionChart(app, 'production', { namespace: 'orders' });
new CloudNativePGChart(app, 'cloudnative-pg', { namespace: 'catalog' });
app.synth();
