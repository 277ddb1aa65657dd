using System.Security.Cryptography;
using System.Text;

namespace EdgeKube.Master.Security;

/// <summary>
/// The API's admin bearer token (<c>{data-dir}/admin.token</c>, created once) and the kubeconfig that
/// carries it (<c>{data-dir}/admin.kubeconfig</c>): what <c>kubectl --kubeconfig</c> uses as is.
/// </summary>
public sealed class AdminCredentials
{
    private readonly byte[] _token;

    private AdminCredentials(string token)
    {
        Token = token;
        _token = Encoding.UTF8.GetBytes(token);
    }

    public string Token { get; }

    public static AdminCredentials LoadOrCreate(string dataDir)
    {
        var path = Path.Combine(dataDir, "admin.token");
        if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: >= 32 } existing)
        {
            return new AdminCredentials(existing);
        }

        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();
        MasterPki.WriteSecret(path, token + "\n");
        return new AdminCredentials(token);
    }

    /// <summary>Constant-time check of an <c>Authorization</c> header value.</summary>
    public bool IsValid(string? authorization)
    {
        const string bearer = "Bearer ";
        if (authorization is null || !authorization.StartsWith(bearer, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var given = Encoding.UTF8.GetBytes(authorization[bearer.Length..].Trim());
        return CryptographicOperations.FixedTimeEquals(given, _token);
    }

    /// <summary>Writes the admin kubeconfig for <paramref name="server"/> (https URL) trusting the master's CA.</summary>
    public string WriteKubeconfig(string dataDir, string server, string caPem)
    {
        var path = Path.Combine(dataDir, "admin.kubeconfig");
        var ca = Convert.ToBase64String(Encoding.UTF8.GetBytes(caPem));
        MasterPki.WriteSecret(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: edgekube
              cluster:
                server: {server}
                certificate-authority-data: {ca}
            contexts:
            - name: edgekube-admin
              context:
                cluster: edgekube
                user: edgekube-admin
                namespace: default
            current-context: edgekube-admin
            users:
            - name: edgekube-admin
              user:
                token: {Token}

            """);
        return path;
    }
}
