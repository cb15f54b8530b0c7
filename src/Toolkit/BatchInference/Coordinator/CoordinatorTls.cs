using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Toolkit.BatchInference;

/// <summary>
/// The TLS identity of a coordinator that listens beyond loopback: a self-signed certificate made for the job, its
/// private key in the job folder (<see cref="KeyFile"/>, mode 0600 from its first byte) and its certificate beside it.
/// Workers pin the certificate's SHA-256 fingerprint (written to <c>coordinator.json</c>), so no certificate authority
/// is involved and no other certificate is accepted.
/// </summary>
internal static class CoordinatorTls
{
    /// <summary>The private key (PEM, PKCS#8), readable by its owner only.</summary>
    public const string KeyFile = "tls.key";

    /// <summary>The certificate (PEM).</summary>
    public const string CertificateFile = "tls.crt";

    /// <summary>
    /// The job's identity: the one in <paramref name="folder"/> when it is there and still valid (a restarted
    /// coordinator keeps its fingerprint, so workers that pinned it reconnect), otherwise a new one for
    /// <paramref name="host"/>, written there.
    /// </summary>
    /// <returns>The certificate with its private key, for the server.</returns>
    public static X509Certificate2 Create(string folder, string host)
    {
        var (key, certificate) = (Path.Combine(folder, KeyFile), Path.Combine(folder, CertificateFile));
        if (File.Exists(key) && File.Exists(certificate))
        {
            try
            {
                using var kept = X509Certificate2.CreateFromPemFile(certificate, key);
                if (kept.NotAfter > DateTime.Now.AddDays(1))
                    return X509CertificateLoader.LoadPkcs12(kept.Export(X509ContentType.Pkcs12), null);
            }
            catch (CryptographicException) { }   // unreadable: make a new one
        }
        return Make(folder, host);
    }

    private static X509Certificate2 Make(string folder, string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(host);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1")], critical: false));   // server authentication
        var now = DateTimeOffset.UtcNow;
        using var made = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));
        AtomicFile.WriteSecret(Path.Combine(folder, KeyFile),
            System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()));
        AtomicFile.Write(Path.Combine(folder, CertificateFile),
            s => s.Write(System.Text.Encoding.ASCII.GetBytes(made.ExportCertificatePem())), "coordinator");
        // Through PKCS#12 so that the key is usable by the TLS stack on every platform.
        return X509CertificateLoader.LoadPkcs12(made.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A certificate's SHA-256 fingerprint: lower-case hex of its DER encoding's hash.</summary>
    public static string Fingerprint(X509Certificate certificate) =>
        Convert.ToHexStringLower(SHA256.HashData(certificate.GetRawCertData()));

    /// <summary>
    /// Whether a certificate a server presented is the pinned one (<paramref name="fingerprint"/>, hex; colons and case
    /// ignored).
    /// </summary>
    public static bool Matches(X509Certificate? presented, string fingerprint) =>
        presented is not null && string.Equals(Fingerprint(presented), Normalize(fingerprint),
            StringComparison.Ordinal);

    /// <summary>A fingerprint as hex without separators, lower case.</summary>
    /// <exception cref="ArgumentException">Not 64 hex digits.</exception>
    public static string Normalize(string fingerprint)
    {
        var hex = fingerprint.Replace(":", "", StringComparison.Ordinal).Trim().ToLowerInvariant();
        return hex.Length == 64 && hex.All(Uri.IsHexDigit) ? hex : throw new ArgumentException(
            $"'{fingerprint}' is not a SHA-256 fingerprint (64 hex digits, as in the job folder's coordinator.json)");
    }
}
