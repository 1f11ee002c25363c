import { Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { Certificate, CertificateSpecPrivateKeyRotationPolicy, CertificateSpecUsages } from './imports/cert-manager-certificate-cert-manager.io';
import { checkSecretName, invalid } from './validation';

/** Keys of a TLS Secret (`kubernetes.io/tls` plus the CA, as cert-manager writes it). */
export const TLS_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' };

/**
 * Options of a cert-manager `Certificate` for PostgreSQL.
 */
export interface PostgresTlsCertManagerOptions {
  /**
   * The issuer that signs the certificate. It must put its CA certificate into the Secret's
   * `ca.crt` (a CA, self-signed or Vault issuer does; ACME issuers cannot sign cluster-internal
   * names).
   */
  readonly issuerName: string;
  /**
   * `Issuer` (in the cluster's namespace) or `ClusterIssuer`.
   *
   * @default "Issuer"
   */
  readonly issuerKind?: string;
  /**
   * The Secret cert-manager writes (`tls.crt`, `tls.key`, `ca.crt`).
   *
   * @default - `<primary name>-tls`
   */
  readonly secretName?: string;
}

/**
 * Where PostgreSQL's server certificate comes from. With TLS, every network connection to
 * PostgreSQL is encrypted (`hostssl` only), standbys and FerretDB verify the server's certificate
 * and host name (`sslmode=verify-full`) against the Secret's `ca.crt`, and the pods reload a
 * renewed certificate without a restart.
 */
export class PostgresTls {
  /**
   * An existing Secret with `tls.crt` (the server certificate, for every name in
   * `PostgresPrimary.tlsDnsNames`), `tls.key` and `ca.crt` (the CA that signed it).
   *
   * @param secretName the Secret's name, in the namespace of the cluster
   */
  public static fromSecret(secretName: string): PostgresTls {
    return new PostgresTls(checkSecretName('tls (PostgresTls.fromSecret secretName)', secretName));
  }

  /**
   * A cert-manager `Certificate` the library synthesizes for every Service and pod name of the
   * cluster, signed by the given issuer. Needs cert-manager.
   */
  public static certManager(options: PostgresTlsCertManagerOptions): PostgresTls {
    if (options === null || typeof options !== 'object') {
      throw invalid('tls (PostgresTls.certManager options)', options, '{ issuerName, issuerKind?, secretName? }');
    }
    checkSecretName('tls (PostgresTls.certManager issuerName)', options.issuerName);
    const kind = options.issuerKind ?? 'Issuer';
    if (!['Issuer', 'ClusterIssuer'].includes(kind)) {
      throw invalid('tls (PostgresTls.certManager issuerKind)', kind, '"Issuer" or "ClusterIssuer"');
    }
    if (options.secretName !== undefined) checkSecretName('tls (PostgresTls.certManager secretName)', options.secretName);
    return new PostgresTls(options.secretName, { name: options.issuerName, kind });
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): PostgresTls {
    if (!(value instanceof PostgresTls)) {
      throw invalid(prop, value, 'PostgresTls.fromSecret(name) or PostgresTls.certManager({ issuerName })');
    }
    return value;
  }

  /** The Secret's name, when given. */
  public readonly secretName?: string;
  /** The cert-manager issuer, when the library synthesizes the Certificate. */
  private readonly issuer?: { readonly name: string; readonly kind: string };

  private constructor(secretName?: string, issuer?: { name: string; kind: string }) {
    this.secretName = secretName;
    this.issuer = issuer;
  }

  /**
   * The Secret the pods mount, and the Certificate writing it when cert-manager issues it.
   * @internal
   */
  public _bind(scope: Construct, o: { defaultSecretName: string; labels: { [key: string]: string }; dnsNames: () => string[] }): string {
    const secretName = this.secretName ?? o.defaultSecretName;
    if (this.issuer) {
      new Certificate(scope, 'Certificate', {
        metadata: { name: secretName, labels: o.labels },
        spec: {
          secretName,
          dnsNames: Lazy.any({ produce: () => o.dnsNames() }) as any,
          issuerRef: { name: this.issuer.name, kind: this.issuer.kind, group: 'cert-manager.io' },
          // A renewal gets a new key, not only a new certificate.
          privateKey: { rotationPolicy: CertificateSpecPrivateKeyRotationPolicy.ALWAYS },
          usages: [CertificateSpecUsages.SERVER_AUTH, CertificateSpecUsages.DIGITAL_SIGNATURE, CertificateSpecUsages.KEY_ENCIPHERMENT],
        },
      });
    }
    return secretName;
  }
}
