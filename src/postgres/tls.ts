import { Construct } from 'constructs';
import { checkIssuer, Issuer, serverCertificate } from '../private/certificates';
import { checkSecretName, invalid } from '../private/validation';

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
    const issuer = checkIssuer('tls (PostgresTls.certManager', options, '{ issuerName, issuerKind?, secretName? }');
    return new PostgresTls(options.secretName, issuer);
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
  private readonly issuer?: Issuer;

  private constructor(secretName?: string, issuer?: Issuer) {
    this.secretName = secretName;
    this.issuer = issuer;
  }

  /**
   * The Secret the pods mount, and the Certificate writing it when cert-manager issues it.
   * @internal
   */
  public _bind(scope: Construct, o: { defaultSecretName: string; labels: { [key: string]: string }; dnsNames: () => string[] }): string {
    const secretName = this.secretName ?? o.defaultSecretName;
    if (this.issuer) serverCertificate(scope, { secretName, issuer: this.issuer, labels: o.labels, dnsNames: o.dnsNames });
    return secretName;
  }
}
