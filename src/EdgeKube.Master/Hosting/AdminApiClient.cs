using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using EdgeKube.Master.Security;

namespace EdgeKube.Master.Hosting;

/// <summary>
/// The master's own commands (<c>node identify</c>) talk to the running master as kubectl does: its API
/// server's URL from <c>master.json</c>, the admin token, and trust in exactly the master's CA.
/// </summary>
public sealed class AdminApiClient : IDisposable
{
    private readonly HttpClient _http;

    private AdminApiClient(HttpClient http) => _http = http;

    /// <summary>A client for the master whose data dir is <paramref name="dataDir"/>; null (with the reason) when it has never run there.</summary>
    public static AdminApiClient? Open(string dataDir, out string? error)
    {
        error = null;
        var infoPath = Path.Combine(dataDir, MasterHost.MasterInfoFile);
        var caPath = Path.Combine(dataDir, "pki", "ca.crt");
        MasterInfo? info;
        try
        {
            info = File.Exists(infoPath) ? JsonSerializer.Deserialize(File.ReadAllText(infoPath), MasterJson.Default.MasterInfo) : null;
        }
        catch (JsonException e)
        {
            error = $"{infoPath} is unreadable: {e.Message}";
            return null;
        }

        if (info is null || !File.Exists(caPath))
        {
            error = $"no master has run with --data-dir {dataDir} (no {MasterHost.MasterInfoFile} or pki/ca.crt)";
            return null;
        }

        var ca = X509Certificate2.CreateFromPem(File.ReadAllText(caPath));
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            if (certificate is not X509Certificate2 presented)
            {
                return false;
            }

            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(presented);
        };
        var http = new HttpClient(handler) { BaseAddress = new Uri(info.ApiUrl), Timeout = TimeSpan.FromSeconds(20) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminCredentials.LoadOrCreate(dataDir).Token);
        return new AdminApiClient(http);
    }

    /// <summary>A JSON merge patch of one object (<c>kubectl patch --type merge</c>); the status code and body.</summary>
    public async Task<(int Status, string Body)> MergePatchAsync(string path, string patch, CancellationToken cancellationToken)
    {
        using var content = new StringContent(patch, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/merge-patch+json");
        using var response = await _http.PatchAsync(path, content, cancellationToken).ConfigureAwait(false);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
    }

    public void Dispose() => _http.Dispose();
}
