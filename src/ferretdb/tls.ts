import { Construct } from 'constructs';
import { checkIssuer, Issuer, serverCertificate } from '../private/certificates';
import { checkSecretName, invalid } from '../private/validation';

/**
 * Options of a cert-manager `Certificate` for FerretDB's MongoDB listener.
 */
export interface FerretDBTlsCertManagerOptions {
  /**
   * The issuer that signs the certificate. Clients verify it against the issuer's CA (the
   * Secret's `ca.crt` with a CA issuer); an ACME issuer can sign only `additionalDnsNames` that
   * are public.
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
   * @default - `<cluster name>-ferretdb-tls`
   */
  readonly secretName?: string;
  /**
   * Host names clients use besides the two Services' names (for example a LoadBalancer's or an
   * external DNS name).
   *
   * @default - none
   */
  readonly additionalDnsNames?: string[];
}

/**
 * Where the certificate of FerretDB's MongoDB listener comes from. With it, FerretDB serves
 * MongoDB clients over TLS only (clients connect with `tls=true`) and rolls its pods when the
 * certificate is renewed (FerretDB reads it once, at start).
 */
export class FerretDBTls {
  /**
   * An existing Secret with `tls.crt` (the server certificate, for every name clients use: see
   * `FerretDBCluster.tlsDnsNames`) and `tls.key`.
   *
   * @param secretName the Secret's name, in the namespace of the cluster
   */
  public static fromSecret(secretName: string): FerretDBTls {
    return new FerretDBTls(checkSecretName('ferretdbTls (FerretDBTls.fromSecret secretName)', secretName));
  }

  /**
   * A cert-manager `Certificate` the library synthesizes for both FerretDB Services (and
   * `additionalDnsNames`), signed by the given issuer. Needs cert-manager.
   */
  public static certManager(options: FerretDBTlsCertManagerOptions): FerretDBTls {
    const prop = 'ferretdbTls (FerretDBTls.certManager';
    const issuer = checkIssuer(prop, options, '{ issuerName, issuerKind?, secretName?, additionalDnsNames? }');
    const extra = options.additionalDnsNames ?? [];
    if (!Array.isArray(extra)) throw invalid(`${prop} additionalDnsNames)`, extra, 'a list of host names');
    for (const [i, name] of extra.entries()) {
      if (typeof name !== 'string' || name.length > 253 || !/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)) {
        throw invalid(`${prop} additionalDnsNames[${i}])`, name, 'a lower-case DNS name (a leading "*." is allowed)');
      }
    }
    return new FerretDBTls(options.secretName, issuer, extra);
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): FerretDBTls {
    if (!(value instanceof FerretDBTls)) {
      throw invalid(prop, value, 'FerretDBTls.fromSecret(name) or FerretDBTls.certManager({ issuerName })');
    }
    return value;
  }

  /** The Secret's name, when given. */
  public readonly secretName?: string;
  private readonly issuer?: Issuer;
  private readonly additionalDnsNames: string[];

  private constructor(secretName?: string, issuer?: Issuer, additionalDnsNames: string[] = []) {
    this.secretName = secretName;
    this.issuer = issuer;
    this.additionalDnsNames = additionalDnsNames;
  }

  /**
   * The Secret the FerretDB pods mount, and the Certificate writing it when cert-manager issues it.
   * @internal
   */
  public _bind(scope: Construct, o: { defaultSecretName: string; labels: { [key: string]: string }; dnsNames: () => string[] }): string {
    const secretName = this.secretName ?? o.defaultSecretName;
    if (this.issuer) {
      const dnsNames = () => [...new Set([...o.dnsNames(), ...this.additionalDnsNames])];
      serverCertificate(scope, { secretName, issuer: this.issuer, labels: o.labels, dnsNames });
    }
    return secretName;
  }
}
