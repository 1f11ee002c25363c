import { App } from 'cdk8s';
import { CloudNativePGChart } from '../../examples/cloudnative-pg';
import { ProductionChart } from '../../examples/production';

/** The charts every language's program synthesizes, by output file name (without `.yaml`). */
export const CHARTS = ['production', 'cloudnative-pg'] as const;

/**
 * The TypeScript synth the other languages must equal byte for byte: each example chart alone in
 * its own App, as `App.synthYaml()` renders it (the programs in python/, go/ and java/ do the same).
 */
export function referenceYaml(): Record<string, string> {
  const production = new App();
  new ProductionChart(production, 'production', { namespace: 'orders' });
  const cnpg = new App();
  new CloudNativePGChart(cnpg, 'cloudnative-pg', { namespace: 'catalog' });
  return { 'production': production.synthYaml(), 'cloudnative-pg': cnpg.synthYaml() };
}
