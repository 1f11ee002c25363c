import { Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { checkSecretName, invalid } from './validation';
import { Certificate, CertificateSpecPrivateKeyRotationPolicy, CertificateSpecUsages } from '../imports/cert-manager-certificate-cert-manager.io';

/** Keys of a TLS Secret (`kubernetes.io/tls` plus the CA, as cert-manager writes it). */
export const TLS_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' };

/** A cert-manager issuer reference, checked. */
export interface Issuer {
  readonly name: string;
  readonly kind: string;
}

/** Checks the options common to every cert-manager source; names the factory in errors. */
export function checkIssuer(
  prop: string, options: { issuerName: string; issuerKind?: string; secretName?: string } | undefined, shape: string,
): Issuer {
  if (options === null || typeof options !== 'object') throw invalid(`${prop} options)`, options, shape);
  checkSecretName(`${prop} issuerName)`, options.issuerName);
  const kind = options.issuerKind ?? 'Issuer';
  if (!['Issuer', 'ClusterIssuer'].includes(kind)) throw invalid(`${prop} issuerKind)`, kind, '"Issuer" or "ClusterIssuer"');
  if (options.secretName !== undefined) checkSecretName(`${prop} secretName)`, options.secretName);
  return { name: options.issuerName, kind };
}

/** A server certificate for `dnsNames` (resolved at synth), a new key at every renewal. */
export function serverCertificate(scope: Construct, o: {
  secretName: string; issuer: Issuer; labels: { [key: string]: string }; dnsNames: () => string[];
}): void {
  new Certificate(scope, 'Certificate', {
    metadata: { name: o.secretName, labels: o.labels },
    spec: {
      secretName: o.secretName,
      dnsNames: Lazy.any({ produce: () => o.dnsNames() }) as any,
      issuerRef: { name: o.issuer.name, kind: o.issuer.kind, group: 'cert-manager.io' },
      // A renewal gets a new key, not only a new certificate.
      privateKey: { rotationPolicy: CertificateSpecPrivateKeyRotationPolicy.ALWAYS },
      usages: [CertificateSpecUsages.SERVER_AUTH, CertificateSpecUsages.DIGITAL_SIGNATURE, CertificateSpecUsages.KEY_ENCIPHERMENT],
    },
  });
}
