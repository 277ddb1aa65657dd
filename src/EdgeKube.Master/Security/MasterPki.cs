using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace EdgeKube.Master.Security;

/// <summary>
/// The master's own certificate authority and API server certificate, kept as PEM files under
/// <c>{data-dir}/pki/</c>: created on the first start, reused afterwards, the server certificate
/// renewed when its names change or it nears its end. The CA is what kubeconfigs and boards trust.
/// </summary>
public sealed class MasterPki
{
    private static readonly TimeSpan CaLifetime = TimeSpan.FromDays(3650);
    private static readonly TimeSpan ServerLifetime = TimeSpan.FromDays(365);

    private MasterPki(X509Certificate2 ca, X509Certificate2 server, string caPem)
    {
        Ca = ca;
        Server = server;
        CaPem = caPem;
    }

    /// <summary>The CA certificate (public part only).</summary>
    public X509Certificate2 Ca { get; }

    /// <summary>The API server's certificate with its private key.</summary>
    public X509Certificate2 Server { get; }

    /// <summary>The CA certificate as PEM, for kubeconfigs and join configs.</summary>
    public string CaPem { get; }

    /// <summary>Loads the PKI from <paramref name="dataDir"/>, creating what is missing; the server certificate names <paramref name="hostNames"/> and <paramref name="addresses"/>.</summary>
    public static MasterPki LoadOrCreate(string dataDir, IReadOnlyCollection<string> hostNames, IReadOnlyCollection<IPAddress> addresses, TimeProvider time)
    {
        var dir = Path.Combine(dataDir, "pki");
        Directory.CreateDirectory(dir);
        var caCrt = Path.Combine(dir, "ca.crt");
        var caKey = Path.Combine(dir, "ca.key");
        var now = time.GetUtcNow();

        X509Certificate2 caWithKey;
        if (File.Exists(caCrt) && File.Exists(caKey))
        {
            caWithKey = X509Certificate2.CreateFromPemFile(caCrt, caKey);
        }
        else
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=edgekube-ca", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            caWithKey = request.CreateSelfSigned(now.AddMinutes(-5), now + CaLifetime);
            WriteSecret(caKey, key.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(caCrt, caWithKey.ExportCertificatePem());
        }

        var serverCrt = Path.Combine(dir, "apiserver.crt");
        var serverKey = Path.Combine(dir, "apiserver.key");
        X509Certificate2? server = null;
        if (File.Exists(serverCrt) && File.Exists(serverKey))
        {
            server = X509Certificate2.CreateFromPemFile(serverCrt, serverKey);
            if (server.NotAfter.ToUniversalTime() < now.UtcDateTime.AddDays(30) || !Names(server).SetEquals(Wanted(hostNames, addresses)))
            {
                server.Dispose();
                server = null;
            }
        }

        if (server is null)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=edgekube-apiserver", key, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            foreach (var name in hostNames)
            {
                san.AddDnsName(name);
            }

            foreach (var address in addresses)
            {
                san.AddIpAddress(address);
            }

            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
            var serial = RandomNumberGenerator.GetBytes(16);
            serial[0] &= 0x7f;
            using var signed = request.Create(caWithKey, now.AddMinutes(-5), now + ServerLifetime, serial);
            server = signed.CopyWithPrivateKey(key);
            WriteSecret(serverKey, key.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(serverCrt, server.ExportCertificatePem());
        }

        var caPem = File.ReadAllText(caCrt);
        var caPublic = X509Certificate2.CreateFromPem(caPem);
        caWithKey.Dispose();

        // Kestrel on Linux wants a certificate whose key it can use directly: re-import as PKCS#12.
        var usable = X509CertificateLoader.LoadPkcs12(server.Export(X509ContentType.Pkcs12), null);
        server.Dispose();
        return new MasterPki(caPublic, usable, caPem);
    }

    private static HashSet<string> Wanted(IReadOnlyCollection<string> hostNames, IReadOnlyCollection<IPAddress> addresses) =>
        [.. hostNames.Select(h => "DNS:" + h), .. addresses.Select(a => "IP:" + a)];

    private static HashSet<string> Names(X509Certificate2 certificate)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var extension in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            names.UnionWith(extension.EnumerateDnsNames().Select(n => "DNS:" + n));
            names.UnionWith(extension.EnumerateIPAddresses().Select(a => "IP:" + a));
        }

        return names;
    }

    /// <summary>Writes a file only its owner may read.</summary>
    public static void WriteSecret(string path, string content)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, string.Empty);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.WriteAllText(temp, content);
        File.Move(temp, path, overwrite: true);
    }
}
